"""Device resolution, seeding and numpy/torch conversion helpers."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from numbers import Integral

import numpy as np
import torch

__all__ = [
    "SMALL_BATCH",
    "as_numpy_generator",
    "resolve_device",
    "resolve_dtype",
    "seed_from_random_state",
    "to_numpy",
    "to_tensor",
    "torch_threads",
    "training_threads",
]

# Below this many rows per optimiser step, one thread is the fastest: the work
# per kernel is too small to split, and a second thread that has to wait for an
# oversubscribed core makes every step many times slower (measured in
# benchmarks/speed.py).
SMALL_BATCH = 4096

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _cuda_available() -> bool:
    return torch.cuda.is_available()


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: str, *, fallback: bool = False) -> torch.device:
    """Turn the ``device`` parameter into a :class:`torch.device`.

    Parameters
    ----------
    device : str
        ``'auto'``, ``'cpu'``, ``'cuda'``, ``'cuda:N'`` or ``'mps'``.
    fallback : bool, default=False
        If the requested accelerator is not available, warn and return the CPU
        instead of raising (used when a model is loaded on another machine).

    Returns
    -------
    torch.device
    """
    if not isinstance(device, str) or not _DEVICE_PATTERN.match(device):
        raise ValueError(
            f"device={device!r} is not understood. Use 'auto', 'cpu', 'cuda', "
            "'cuda:N' (N an integer) or 'mps'."
        )
    if device == "auto":
        if _cuda_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda"):
        ok = _cuda_available()
        if ok and ":" in device:
            ok = int(device.split(":")[1]) < torch.cuda.device_count()
    elif device == "mps":
        ok = _mps_available()
    else:
        ok = True
    if ok:
        return torch.device(device)
    if fallback:
        warnings.warn(
            f"This model was on device {device!r}, which is not available on this "
            "machine; it is moved to the CPU.",
            RuntimeWarning,
            stacklevel=3,
        )
        return torch.device("cpu")
    raise ValueError(
        f"device={device!r} was requested but is not available on this machine. "
        "Use device='cpu', or device='auto' to pick the best available device."
    )


def resolve_dtype(
    precision: str, X_dtype: np.dtype, device: torch.device
) -> torch.dtype:
    """Choose the torch floating dtype used for training.

    ``'auto'`` follows the dtype of ``X``: float32 input trains in float32,
    anything else in float64 (as :class:`~sklearn.neural_network.MLPRegressor`).
    MPS has no float64, so float64 requests on MPS fall back to float32.
    """
    if precision == "auto":
        dtype = torch.float32 if X_dtype == np.float32 else torch.float64
    else:
        dtype = torch.float32 if precision == "float32" else torch.float64
    if dtype == torch.float64 and device.type == "mps":
        warnings.warn(
            "MPS does not support float64; training in float32 instead.",
            RuntimeWarning,
            stacklevel=3,
        )
        dtype = torch.float32
    return dtype


def seed_from_random_state(random_state) -> int:
    """Draw an integer seed without touching numpy's global random state.

    ``None`` draws fresh OS entropy, an integer is used as is, and a
    :class:`numpy.random.RandomState` or :class:`numpy.random.Generator`
    instance is advanced (it belongs to the caller).
    """
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_state, Integral | np.integer):
        return int(random_state) % (2**63)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(np.iinfo(np.int64).max))
    raise ValueError(
        f"random_state={random_state!r} cannot be used to seed; pass None, an "
        "int, a numpy RandomState or a numpy Generator."
    )


def as_numpy_generator(random_state) -> np.random.Generator:
    """Return a private :class:`numpy.random.Generator` for ``random_state``.

    Never returns or advances numpy's global generator.
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(seed_from_random_state(random_state))


def to_tensor(
    array: np.ndarray, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Copy a numpy array to a contiguous tensor of ``dtype`` on ``device``."""
    return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype, device=device)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """Return a float64 numpy copy of ``tensor`` (moved to the CPU)."""
    return tensor.detach().to("cpu", torch.float64).numpy()


def training_threads(n_threads: int | None, batch_size: int) -> int | None:
    """Torch threads for training: ``n_threads``, or 1 for small batches."""
    if n_threads is not None:
        return n_threads
    return 1 if batch_size < SMALL_BATCH else None


@contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with ``n_threads`` torch threads, then restore the setting.

    ``None`` leaves torch's current setting alone. The setting is global to
    the process, so concurrent fits in threads of one process share it.
    """
    previous = torch.get_num_threads()
    if n_threads is None or n_threads == previous:
        yield
        return
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
