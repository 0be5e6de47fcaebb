"""Shared fixtures: the synthetic problems the tests are built on."""

import os

# scikit-learn's common check of array-API input is skipped unless scipy's
# array-API mode is on; turn it on (before scipy is imported) so it runs.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np
import pytest


def make_inverse_sine(n, seed=0):
    """Bishop's inverse problem: x ~ U(0, 1), t = x + 0.3 sin(2 pi x) + U(-0.1, 0.1);
    regress x on t (a multimodal target for t in about (0.35, 0.65))."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, n)
    t = x + 0.3 * np.sin(2.0 * np.pi * x) + rng.uniform(-0.1, 0.1, n)
    return t[:, None], x


@pytest.fixture
def inverse_sine():
    return make_inverse_sine(2000, seed=0)


@pytest.fixture
def two_threads(monkeypatch):
    """Torch on two threads with no OMP_NUM_THREADS cap (restored after)."""
    import torch

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tanh_form(request, monkeypatch):
    """Force one tanh form of ``skmdn._kernels`` (the param, one of
    ``_kernels.FORMS``) for every dtype, whichever this machine measured
    fastest. ``'numpy'`` has no autograd form; autograd then uses torch's."""
    import torch

    from skmdn import _kernels

    form = request.param
    autograd = form if form in _kernels.FORMS[:2] else "torch"
    forced = _kernels.TanhForms(form, autograd)
    monkeypatch.setattr(
        _kernels, "_choice", dict.fromkeys((torch.float32, torch.float64), forced)
    )
    return form


def exits_when_forked(target, *args) -> bool:
    """Run ``target(*args)`` in a forked child: True if it exits with code 0
    within 60 s; a child that hangs is killed (and gives False)."""
    import multiprocessing

    child = multiprocessing.get_context("fork").Process(target=target, args=args)
    child.start()
    child.join(60)
    hung = child.is_alive()
    if hung:
        child.kill()
    return not hung and child.exitcode == 0


#: Skips a test where multiprocessing has no fork start method (Windows).
needs_fork = pytest.mark.skipif(
    "fork" not in __import__("multiprocessing").get_all_start_methods(),
    reason="needs fork",
)


def threads_of_a_new_thread() -> int:
    """The torch thread count a thread gets at its first use of torch."""
    import threading

    import torch

    seen = []
    worker = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    worker.start()
    worker.join()
    return seen[0]
