"""tanh by whichever of three exact-to-rounding forms is fastest on this CPU.

PyPI's torch is built with Intel MKL, and its CPU ``tanh`` on contiguous
float tensors calls MKL's vector math library. On AMD processors MKL runs a
generic code path: on an AMD EPYC (Zen 4) VM, ``tanh_`` of 64 x 4096
float32 took 873 us on one thread, torch's own vectorised ``sigmoid`` in
``2 sigmoid(2 x) - 1`` 239 us and numpy's SIMD ``tanh`` in place on the
tensor's memory 137 us (float64: 1764, 554 and 619 us; each time included
the probe's 29 or 51 us copy of the block, which the probe no longer times).
There torch's tanh
was a fifth of a training step and half of the inference forward pass
(``benchmarks/README.md``).

The forms (:data:`FORMS`):

- ``'torch'``: ``torch.tanh``;
- ``'sigmoid'``: ``2 sigmoid(2x) - 1`` with torch's sigmoid, differentiable by
  autograd; absolute error at most about two units in the last place of 1
  (1.8e-7 in float32, 3e-16 in float64, measured), the size of float32's own
  rounding of a hidden unit near +-1;
- ``'numpy'``: ``numpy.tanh`` writing into the tensor's memory (in-place
  only, no autograd; numpy releases the GIL, so inference worker threads run
  it in parallel); absolute error at most 6e-8 in float32 (half a unit in
  the last place of 1; measured on [-3, 3]).

Each dtype's forms are timed once per process, on one thread, on the first
CPU call (:func:`tanh_forms`), taking turns, each by its fastest of seven
runs (:func:`_probe_seconds`), so that load on the machine during the probe
does not pick the form. Going through the forms in the order above, a form
replaces the choice so far only if it measured at least :data:`MIN_GAIN`
times as fast, so that the choice does not depend on timing noise where two
forms are close (in six processes here, float64's sigmoid form took
0.82-0.99 times the numpy form's time; float32's numpy form was 1.61-1.96x
as fast as the sigmoid form, which was 2.8-4.2x as fast as torch's). CUDA
and other dtypes keep ``torch.tanh``. Since the forms agree to rounding, a
model pickled on one machine and loaded on another, where another form won,
predicts the same to rounding.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np
import torch

from ._utils import cpu_fast_path, lock_renewed_after_fork, torch_threads

__all__ = ["FORMS", "MIN_GAIN", "TanhForms", "tanh", "tanh_", "tanh_forms"]

FORMS = ("torch", "sigmoid", "numpy")

# A form must be this many times as fast as the choice before it to replace it.
MIN_GAIN = 1.3


class TanhForms(NamedTuple):
    """The forms one dtype uses: in place (no autograd), and differentiable."""

    in_place: str
    autograd: str


_choice: dict[torch.dtype, TanhForms] = {}
# held while a thread measures the forms; a forked child gets a free one (and
# measures any dtype the parent had not finished)
_lock = lock_renewed_after_fork(globals(), "_lock")


def _probe_seconds(
    block: torch.Tensor, work: torch.Tensor, rounds: int = 7
) -> dict[str, float]:
    """Seconds of each in-place form on ``work`` (a fresh copy of ``block``
    each time, not timed): the fastest of ``rounds`` timings, the forms
    taking turns within each round.

    Taking turns lets a busy spell of the machine (another process on the
    core) slow every form alike instead of the one measured during it, and
    the fastest timing is the one such a spell touched least: so the choice,
    and with it a fit's bits, does not depend on the load at the moment of
    the probe.
    """
    best = dict.fromkeys(_IN_PLACE, math.inf)
    for _ in range(rounds):
        for form, fn in _IN_PLACE.items():
            work.copy_(block)
            start = time.perf_counter()
            fn(work)
            best[form] = min(best[form], time.perf_counter() - start)
    return best


def _sigmoid_form_(x: torch.Tensor) -> torch.Tensor:
    return x.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)


def _numpy_form_(x: torch.Tensor) -> torch.Tensor:
    array = x.numpy()  # a view of the tensor's memory, any strides
    np.tanh(array, out=array)
    return x


_IN_PLACE = {
    "torch": torch.Tensor.tanh_,
    "sigmoid": _sigmoid_form_,
    "numpy": _numpy_form_,
}


def tanh_forms(dtype: torch.dtype) -> TanhForms:
    """The tanh forms this process uses for CPU tensors of ``dtype``.

    Measured once per dtype (about 30 ms on a slow machine), under a lock so
    that worker threads agree, with one torch thread on a 64 x 4096 block;
    ``'torch'`` for both for dtypes other than float32 and float64.
    """
    if dtype not in (torch.float32, torch.float64):
        return TanhForms("torch", "torch")
    if dtype in _choice:
        return _choice[dtype]
    with _lock:
        if dtype not in _choice:
            block = torch.linspace(-3.0, 3.0, 64 * 4096, dtype=dtype).view(64, 4096)
            work = block.clone()
            with torch_threads(1), torch.no_grad():
                seconds = _probe_seconds(block, work)

            def choose(candidates: tuple[str, ...]) -> str:
                best = candidates[0]
                for form in candidates[1:]:
                    if seconds[best] >= MIN_GAIN * seconds[form]:
                        best = form
                return best

            _choice[dtype] = TanhForms(choose(FORMS), choose(FORMS[:2]))
    return _choice[dtype]


def _forms(x: torch.Tensor) -> TanhForms:
    if not cpu_fast_path(x.device):
        return TanhForms("torch", "torch")
    return tanh_forms(x.dtype)


def tanh_(x: torch.Tensor) -> torch.Tensor:
    """tanh of ``x`` in place (no autograd); returns ``x``."""
    return _IN_PLACE[_forms(x).in_place](x)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh of ``x``, differentiable by autograd."""
    if _forms(x).autograd == "torch":
        return torch.tanh(x)
    return torch.sigmoid(x * 2.0) * 2.0 - 1.0
