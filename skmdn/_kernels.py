"""tanh by whichever of two exact-to-rounding forms is faster on this CPU.

PyPI's torch is built with Intel MKL, and its CPU ``tanh`` on contiguous
float tensors calls MKL's vector math library. On AMD processors MKL runs a
generic code path: on an AMD EPYC (Zen 4) VM, ``tanh_`` of 64 x 8192
float32 took 1348 us on one thread, torch's own vectorised ``sigmoid`` in
``2 sigmoid(2 x) - 1`` 290 us (float64: 2793 against 1222 us), numpy's
``tanh`` 190 us. There tanh was a fifth of a training step and half of the
inference forward pass (``benchmarks/README.md``).

:func:`tanh` and :func:`tanh_` use the sigmoid form where it measured at
least :data:`MIN_GAIN` times as fast as ``torch.tanh`` (once per process and
dtype, on one thread, on the first CPU call), and ``torch.tanh`` everywhere
else, CUDA included. The margin keeps the choice from depending on timing
noise where the two are close. The forms agree to rounding: the sigmoid
form's absolute error is at most about two units in the last place of 1
(1.8e-7 in float32, 3e-16 in float64, measured), the size of float32's own
rounding of a hidden unit near +-1. So a model pickled on one machine and
loaded on another, where the other form won, predicts the same to rounding.
"""

from __future__ import annotations

import threading
import time

import torch

from ._utils import torch_threads

__all__ = ["MIN_GAIN", "sigmoid_form_is_faster", "tanh", "tanh_"]

# The sigmoid form must be this many times as fast as torch.tanh to be used.
MIN_GAIN = 1.5

_choice: dict[torch.dtype, bool] = {}
_lock = threading.Lock()


def _median_time(fn, x: torch.Tensor, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return sorted(times)[repeats // 2]


def _sigmoid_form_(x: torch.Tensor) -> torch.Tensor:
    return x.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)


def sigmoid_form_is_faster(dtype: torch.dtype) -> bool:
    """Whether this process computes CPU tanh of ``dtype`` as ``2 sigmoid(2x) - 1``.

    Measured once per dtype (about 20 ms on a slow machine), under a lock so
    that worker threads agree, with one torch thread on a 64 x 4096 block.
    False for dtypes other than float32 and float64 (they keep torch's).
    """
    if dtype not in (torch.float32, torch.float64):
        return False
    if dtype in _choice:
        return _choice[dtype]
    with _lock:
        if dtype not in _choice:
            block = torch.linspace(-3.0, 3.0, 64 * 4096, dtype=dtype).view(64, 4096)
            work = block.clone()
            with torch_threads(1), torch.no_grad():
                native = _median_time(lambda w: w.copy_(block).tanh_(), work)
                form = _median_time(lambda w: _sigmoid_form_(w.copy_(block)), work)
            _choice[dtype] = native > MIN_GAIN * form
    return _choice[dtype]


def _use_form(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and sigmoid_form_is_faster(x.dtype)


def tanh_(x: torch.Tensor) -> torch.Tensor:
    """tanh of ``x`` in place (no autograd); returns ``x``."""
    return _sigmoid_form_(x) if _use_form(x) else x.tanh_()


def tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh of ``x``, differentiable by autograd."""
    if not _use_form(x):
        return torch.tanh(x)
    return torch.sigmoid(x * 2.0) * 2.0 - 1.0
