"""``skmdn._kernels``: the tanh forms against the C library's tanh, and how one
is chosen."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from scipy.special import expit
from scipy.stats import norm

from skmdn import _kernels
from skmdn._network import MDNNetwork

from .conftest import exits_when_forked, needs_fork

FORMS = _kernels.FORMS  # torch.tanh, 2 sigmoid(2x) - 1, numpy.tanh in place


@pytest.mark.parametrize("tanh_form", FORMS, indirect=True)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tanh_matches_the_c_library(tanh_form, dtype):
    x = torch.cat([
        torch.linspace(-30.0, 30.0, 20001, dtype=dtype),
        torch.tensor([0.0, 1e-30, -1e-30, float("inf"), -float("inf")], dtype=dtype),
    ])  # fmt: skip
    # the C library's tanh: independent of numpy's SIMD one (the 'numpy' form)
    expected = np.array([math.tanh(v) for v in x.double().tolist()])
    eps = torch.finfo(dtype).eps
    out = _kernels.tanh(x)
    inplace = _kernels.tanh_(x.clone())
    for result in (out, inplace):
        assert result.dtype == dtype
        np.testing.assert_allclose(
            result.double().numpy(), expected, rtol=0, atol=2 * eps
        )
    # the sign of the limits is exact in every form
    assert inplace[-2] == 1.0 and inplace[-1] == -1.0


@pytest.mark.parametrize("tanh_form", FORMS, indirect=True)
def test_in_place_tanh_writes_only_a_strided_view(tanh_form):
    base = torch.linspace(-2.0, 2.0, 60, dtype=torch.float32).view(6, 10)
    expected = base.clone()
    expected[1::2, ::3] = torch.tanh(expected[1::2, ::3].double()).float()
    with torch.inference_mode():
        x = base.clone()
        view = x[1::2, ::3]
        assert _kernels.tanh_(view) is view
    torch.testing.assert_close(x, expected, rtol=0, atol=2e-7)


@pytest.mark.parametrize("tanh_form", FORMS, indirect=True)
def test_tanh_gradient_is_one_minus_tanh_squared(tanh_form):
    x = torch.linspace(-4.0, 4.0, 101, dtype=torch.float64, requires_grad=True)
    _kernels.tanh(x).sum().backward()
    expected = 1.0 - np.tanh(x.detach().numpy()) ** 2
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("tanh_form", FORMS, indirect=True)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("products", ["onednn", "mkl"])
def test_network_forward_is_the_same_with_and_without_autograd(
    tanh_form, dtype, products, monkeypatch
):
    if products == "mkl":  # a torch without oneDNN
        monkeypatch.setattr("skmdn._network._onednn_linear", lambda: None)
    net = MDNNetwork(3, 2, 4, (16, 8), "tanh", "diagonal", 1e-3).to(dtype)
    net.reset_parameters(torch.Generator().manual_seed(0))
    x = torch.randn(50, 3, dtype=dtype, generator=torch.Generator().manual_seed(1))
    exact = copy.deepcopy(net).double()  # torch.tanh in float64, via nn.Tanh
    reference = torch.nn.Sequential(*exact.trunk, exact.head)(x.double())
    with torch.inference_mode():  # in place, the fast path
        fast = net.head(net.features(x))
    slow = net.head(net.features(x))  # autograd on
    tol = 50 * torch.finfo(dtype).eps
    for out in (fast, slow.detach()):
        np.testing.assert_allclose(out.double().numpy(), reference.detach().numpy(),
                                   rtol=0, atol=tol)  # fmt: skip


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        # torch, sigmoid, numpy -> (in place, autograd); the margin is 1.3x
        ((1.2, 1.0, 1.1), ("torch", "torch")),  # 1.2x: inside the margin
        ((1.4, 1.0, 1.1), ("sigmoid", "sigmoid")),
        ((1.4, 1.0, 0.9), ("sigmoid", "sigmoid")),  # numpy: only 1.1x
        ((1.4, 1.0, 0.7), ("numpy", "sigmoid")),
        ((1.2, 1.0, 0.7), ("numpy", "torch")),  # 1.7x torch's; sigmoid 1.2x
        ((3.0, 1.0, 2.5), ("sigmoid", "sigmoid")),
        ((1.0, 1.2, 1.3), ("torch", "torch")),
    ],
)
def test_each_form_must_beat_the_choice_before_it(monkeypatch, seconds, expected):
    def fake_probe(block, work):
        return dict(zip(_kernels.FORMS, seconds, strict=True))

    monkeypatch.setattr(_kernels, "_probe_seconds", fake_probe)
    monkeypatch.setattr(_kernels, "_choice", {})
    assert _kernels.tanh_forms(torch.float32) == expected


def test_choice_is_measured_once_per_dtype(monkeypatch):
    timings = iter([(3.0, 1.0, 2.0), (1.2, 1.0, 0.5)])  # float32, then float64
    calls = []

    def fake_probe(block, work):
        calls.append(block.dtype)
        return dict(zip(_kernels.FORMS, next(timings), strict=True))

    monkeypatch.setattr(_kernels, "_probe_seconds", fake_probe)
    monkeypatch.setattr(_kernels, "_choice", {})
    before = torch.get_num_threads()
    assert _kernels.tanh_forms(torch.float32) == ("sigmoid", "sigmoid")
    assert _kernels.tanh_forms(torch.float64) == ("numpy", "torch")
    assert _kernels.tanh_forms(torch.float32) == ("sigmoid", "sigmoid")  # cached
    assert calls == [torch.float32, torch.float64]
    assert torch.get_num_threads() == before  # restored after the probe


def test_the_probe_times_each_form_on_its_own_result(monkeypatch):
    """Every timed function really computes tanh of the block (not a no-op)."""
    results = {}

    def recording(form, fn):
        def run(x):
            fn(x)
            results.setdefault(form, []).append(x.clone())

        return run

    in_place = {form: recording(form, fn) for form, fn in _kernels._IN_PLACE.items()}
    monkeypatch.setattr(_kernels, "_IN_PLACE", in_place)
    block = torch.linspace(-3.0, 3.0, 64 * 4096, dtype=torch.float64).view(64, 4096)
    _kernels._probe_seconds(block, block.clone(), rounds=2)
    expected = np.tanh(block.numpy())
    assert sorted(results) == sorted(_kernels.FORMS)
    for got in results.values():  # each run on a fresh copy of the block
        assert len(got) == 2
        for x in got:
            np.testing.assert_allclose(x.numpy(), expected, rtol=0, atol=1e-15)


def test_a_busy_spell_during_the_probe_does_not_pick_the_form(monkeypatch):
    """Forms whose own costs are 4, 2 and 1.8 (sigmoid stays: numpy is not
    1.3x faster), timed on a clock that runs three times slow during runs 8
    to 14, as when another process takes the core for a while. Timed one form
    after the other by medians (the probe before), the spell covers the
    sigmoid form's runs and numpy is picked; taking turns and keeping each
    form's fastest run, sigmoid is."""
    cost = dict(zip(_kernels.FORMS, (4.0, 2.0, 1.8), strict=True))
    clock = {"now": 0.0, "runs": 0}

    def run_of(form):
        def run(x):
            clock["runs"] += 1
            busy = 8 <= clock["runs"] <= 14
            clock["now"] += cost[form] * (3.0 if busy else 1.0)

        return run

    def choice(seconds):
        monkeypatch.setattr(_kernels, "_choice", {})
        monkeypatch.setattr(_kernels, "_probe_seconds", lambda b, w: seconds)
        return _kernels.tanh_forms(torch.float32).in_place

    runs = {f: run_of(f) for f in cost}
    monkeypatch.setattr(_kernels.time, "perf_counter", lambda: clock["now"])
    # the probe before: each form seven times in a row, the median
    sequential = {}
    for form, run in runs.items():
        times = []
        for _ in range(7):
            start = clock["now"]
            run(None)
            times.append(clock["now"] - start)
        sequential[form] = sorted(times)[3]
    clock.update(now=0.0, runs=0)
    monkeypatch.setattr(_kernels, "_IN_PLACE", runs)
    block = torch.zeros(2, 2)
    seconds = _kernels._probe_seconds(block, block.clone())
    # every form's fastest run is outside the spell
    assert seconds == pytest.approx(cost, rel=1e-12)
    assert choice(sequential) == "numpy"
    assert choice(seconds) == "sigmoid"


def test_other_dtypes_and_devices_use_torch(monkeypatch):
    forms = _kernels.TanhForms("numpy", "sigmoid")
    monkeypatch.setattr(_kernels, "_choice", dict.fromkeys(
        (torch.float32, torch.float64), forms))  # fmt: skip
    x = torch.linspace(-2, 2, 9, dtype=torch.bfloat16)
    assert torch.equal(_kernels.tanh(x), torch.tanh(x))
    x = torch.linspace(-2, 2, 9, dtype=torch.float64, device="meta")
    assert _kernels.tanh(x).device.type == "meta"
    assert _kernels.tanh_(x).device.type == "meta"


@pytest.mark.parametrize(
    ("noise_type", "K", "d"),
    [("diagonal", 5, 1), ("diagonal", 5, 2), ("isotropic", 3, 4), ("full", 2, 2)],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("products", ["onednn", "mkl"])
def test_inference_head_matches_the_layer(
    noise_type, K, d, dtype, products, monkeypatch
):
    """The float32 head runs through oneDNN, or where torch lacks it (the
    ``'mkl'`` case) through a weight padded to 16k rows (widths 15, 25, 18
    and 12 here); outputs and their layout are the layer's, and the
    location-only forward (no scale columns) gives the same weights and
    means."""
    if products == "mkl":
        monkeypatch.setattr("skmdn._network._onednn_linear", lambda: None)
    net = MDNNetwork(3, d, K, (16,), "tanh", noise_type, 1e-3).to(dtype)
    net.reset_parameters(torch.Generator().manual_seed(0))
    x = torch.randn(70, 3, dtype=dtype, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        fast = net.head_outputs(x)
    slow = net.head_outputs(x)  # autograd on: nn.Linear itself
    assert net.head.out_features % 16 != 0
    tol = 4 * torch.finfo(dtype).eps
    for got, want in zip(fast, slow, strict=True):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want.detach(), rtol=tol, atol=tol)
    with torch.inference_mode():
        log_weights, means = net.locations(x)
    torch.testing.assert_close(means, slow[1].detach(), rtol=tol, atol=tol)
    want = torch.log_softmax(slow[0].detach(), dim=1)
    torch.testing.assert_close(log_weights, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("failure", ["no oneDNN", "no op", "op fails", "wrong"])
def test_the_onednn_probe_falls_back_to_mm(failure, monkeypatch):
    """Without oneDNN, without the (private) op, or with an op that raises
    or computes something else, the probe gives None and inference's
    products run through mm: still the product."""
    from skmdn import _network

    class Ops:
        def _linear_pointwise(self, x, w, b, *args):
            if failure == "op fails":
                raise RuntimeError("unsupported")
            return torch.mm(x, w.t())  # "wrong": the bias forgotten

    if failure == "no oneDNN":
        monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    else:
        monkeypatch.setattr(
            torch.ops, "mkldnn", object() if failure == "no op" else Ops()
        )
    _network._onednn_linear.cache_clear()
    try:
        assert _network._onednn_linear() is None
        x, w, b = torch.randn(5, 3), torch.randn(4, 3), torch.randn(4)
        torch.testing.assert_close(_network._product(x, w, b), x @ w.T + b)
    finally:
        _network._onednn_linear.cache_clear()


def test_this_torch_has_the_onednn_inference_product():
    """Inference's float32 products go through oneDNN wherever torch is built
    with it (as PyPI's x86 builds are); its result is the product's to float32
    rounding, against float64 arithmetic (a wrong operand, transpose or
    bias is off by far more)."""
    from skmdn._network import _onednn_linear, _product

    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN")
    assert _onednn_linear() is not None
    gen = torch.Generator().manual_seed(0)
    for n, k, m in [(1, 1, 1), (7, 3, 5), (4096, 64, 64), (300, 64, 25)]:
        x, w, b = (
            torch.randn(*shape, generator=gen) for shape in ((n, k), (m, k), (m,))
        )
        want = x.double() @ w.double().T + b.double()
        got = _product(x, w, b)
        assert got.dtype == torch.float32 and got.shape == (n, m)
        # the worst case of k + 1 roundings (Higham's gamma_{k+1})
        bound = (
            (k + 2)
            * torch.finfo(torch.float32).eps
            * (x.abs().double() @ w.abs().double().T + b.abs().double())
        )
        assert torch.all((got.double() - want).abs() <= bound + 1e-30)


@pytest.mark.parametrize(
    "activation", ["tanh", "relu", "logistic", "gelu", "silu", "identity"]
)
@pytest.mark.parametrize("hidden", [(), (7,), (16, 8)])
def test_inference_forward_matches_the_modules(activation, hidden):
    """Without autograd the network runs mm + in-place bias and activations."""
    net = MDNNetwork(3, 2, 4, hidden, activation, "diagonal", 1e-3).double()
    net.reset_parameters(torch.Generator().manual_seed(0))
    x = torch.randn(
        40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    x_before = x.clone()
    with torch.inference_mode():
        fast = net.head_outputs(x)
    slow = net.head_outputs(x)  # autograd on: the modules themselves
    for got, want in zip(fast, slow, strict=True):
        torch.testing.assert_close(got, want.detach(), rtol=1e-13, atol=1e-13)
    assert torch.equal(x, x_before)  # the input is never written to


@pytest.mark.parametrize(
    "activation, reference",
    [
        ("tanh", np.tanh),
        ("relu", lambda z: np.maximum(z, 0.0)),
        ("logistic", expit),
        ("gelu", lambda z: z * norm.cdf(z)),
        ("silu", lambda z: z * expit(z)),
        ("identity", lambda z: z),
    ],
    ids=["tanh", "relu", "logistic", "gelu", "silu", "identity"],
)
def test_each_activation_is_the_function_it_is_named_after(activation, reference):
    """The hidden units compute ``reference(W x + b)``, with and without
    autograd. The tests above compare the network's two forward paths and
    its backward with autograd, all on the same modules: with 'gelu' built
    as SiLU, 'logistic' as tanh or 'relu' as the identity, every test of the
    numerical core passed."""
    net = MDNNetwork(1, 1, 1, (7,), activation, "diagonal", 1e-3).double()
    with torch.no_grad():
        net.trunk[0].weight.copy_(
            torch.linspace(-3.0, 3.0, 7, dtype=torch.float64)[:, None]
        )
        net.trunk[0].bias.copy_(torch.linspace(-1.0, 1.0, 7, dtype=torch.float64))
    x = torch.linspace(-2.0, 2.0, 11, dtype=torch.float64)[:, None]
    z = x.numpy() * np.linspace(-3.0, 3.0, 7) + np.linspace(-1.0, 1.0, 7)
    with torch.inference_mode():
        fast = net.features(x)
    slow = net.features(x).detach()  # autograd on: the modules themselves
    for got in (fast, slow):
        np.testing.assert_allclose(got.numpy(), reference(z), rtol=1e-12, atol=1e-15)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_predict_times_the_forms_before_its_worker_threads_start(monkeypatch):
    import threading

    from skmdn import MDNRegressor

    X = np.linspace(-1, 1, 300)[:, None]
    model = MDNRegressor(n_components=2, max_iter=2, random_state=0, n_threads=2)
    model.fit(X, np.sin(3 * X[:, 0]))
    probes = []

    def fake_probe(block, work):
        probes.append(threading.current_thread() is threading.main_thread())
        return dict.fromkeys(_kernels.FORMS, 1.0)

    monkeypatch.setattr(_kernels, "_probe_seconds", fake_probe)
    monkeypatch.setattr(_kernels, "_choice", {})
    model.predict(np.repeat(X, 200, axis=0))  # 60000 rows: several chunks
    assert probes == [True]  # once, in the main thread


@needs_fork
def test_a_fork_while_another_thread_measures_does_not_hang_the_child(monkeypatch):
    """A process forked while a thread of the parent measures the forms
    copies the lock held; the child's own first tanh must not wait for it."""
    import os
    import threading

    parent, probing, release = os.getpid(), threading.Event(), threading.Event()
    real = _kernels._probe_seconds

    def held(block, work):  # the parent's probe holds the lock until released
        if os.getpid() == parent:
            probing.set()
            release.wait(60)
        return real(block, work)

    monkeypatch.setattr(_kernels, "_probe_seconds", held)
    monkeypatch.setattr(_kernels, "_choice", {})
    measuring = threading.Thread(target=_kernels.tanh_forms, args=(torch.float32,))
    measuring.start()
    try:
        assert probing.wait(60)

        def in_child() -> None:
            # one torch thread, as skmdn's own work runs: a parent that ran
            # OpenMP-parallel torch ops earlier (the rest of the suite, at
            # torch's default 2 threads) leaves libgomp unusable for parallel
            # regions in a forked child, a hang that is torch's, not skmdn's
            torch.set_num_threads(1)
            _kernels.tanh_forms(torch.float32)

        assert exits_when_forked(in_child)
    finally:
        release.set()
        measuring.join()
