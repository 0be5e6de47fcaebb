"""Device resolution, threads, seeding, conversion and input checks."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from numbers import Integral

import numpy as np
import sklearn
import torch
from scipy import sparse
from sklearn.utils.validation import _check_sample_weight

__all__ = [
    "SHORT_SUM_MAX",
    "SMALL_BATCH",
    "SPLIT_BATCH",
    "ThreadChooser",
    "as_numpy_generator",
    "check_finite_targets",
    "check_input_kind",
    "check_sample_weight",
    "cpu_fast_path",
    "lock_renewed_after_fork",
    "max_last",
    "non_finite_advice",
    "one_torch_thread",
    "overflow_safe_weights",
    "power_of_two_unit",
    "resolve_device",
    "resolve_dtype",
    "run_blocks",
    "seed_from_random_state",
    "sum_last",
    "target_shape",
    "tensor_view",
    "thread_count",
    "to_numpy",
    "torch_thread_budget",
    "torch_threads",
    "warn_user",
]


# Where a warning is not about the user's code: this package and
# scikit-learn (whose ``_fit_context`` wraps ``fit``).
_INTERNAL_PATHS = tuple(
    os.path.dirname(os.path.abspath(m.__file__)) + os.sep
    for m in (sys.modules[__package__], sklearn)
)


def warn_user(message: str, category: type[Warning]) -> None:
    """:func:`warnings.warn` pointed at the first caller outside skmdn and
    scikit-learn, whatever the depth of the call (``fit``, a pipeline, a grid
    search), so the warning names the user's line."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL_PATHS):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


# Below this many rows per optimiser step, one thread is the fastest: the work
# per kernel is too small to split, and a second thread that has to wait for an
# oversubscribed core makes every step many times slower (measured in
# benchmarks/speed.py).
SMALL_BATCH = 4096

# From this many rows a training step runs as two or more blocks on worker
# threads (skmdn._backprop.BlockedBackprop: a quarter of its largest block),
# and ThreadChooser times one worker against all. With the compiled block,
# which holds no GIL, two workers took a 1024-row step 1.1-1.3x faster than
# one, a 1808-row step (an epoch's last batch) 1.3-1.45x (benchmarks/README.md).
SPLIT_BATCH = SMALL_BATCH // 4

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _cuda_available() -> bool:
    return torch.cuda.is_available()


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _current_cuda() -> torch.device:
    """``'cuda'`` with its index: the GPU current now, which is where the
    network goes. A bare ``torch.device('cuda')`` means whichever GPU is
    current when it is used, so inputs sent there after
    ``torch.cuda.set_device`` (per thread) would miss the weights."""
    return torch.device("cuda", torch.cuda.current_device())


def _device_name(device: torch.device) -> str:
    """A :class:`torch.device` as the string the ``device`` parameter takes:
    ``'cuda:N'`` (or ``'cuda'``) for a GPU, ``'cpu'`` and ``'mps'`` (index
    None or 0: there is one of each); anything else as torch writes it."""
    if device.type in ("cpu", "mps") and device.index in (None, 0):
        return device.type
    return str(device)


def resolve_device(
    device: str | torch.device, *, fallback: bool = False
) -> torch.device:
    """Turn the ``device`` parameter into a :class:`torch.device`.

    Parameters
    ----------
    device : str or torch.device
        ``'auto'``, ``'cpu'``, ``'cuda'``, ``'cuda:N'`` or ``'mps'``, or a
        :class:`torch.device` of type cpu, cuda or mps.
    fallback : bool, default=False
        If the requested accelerator is not available, warn and return the CPU
        instead of raising (used when a model is loaded on another machine).

    Returns
    -------
    torch.device
    """
    if isinstance(device, torch.device):
        device = _device_name(device)
    if not isinstance(device, str) or not _DEVICE_PATTERN.match(device):
        raise ValueError(
            f"device={device!r} is not understood. Use 'auto', 'cpu', 'cuda', "
            "'cuda:N' (N an integer) or 'mps', or a torch.device of those."
        )
    if device == "auto":
        if _cuda_available():
            return _current_cuda()
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
        return _current_cuda() if device == "cuda" else torch.device(device)
    if fallback:
        warn_user(
            f"This model was on device {device!r}, which is not available on this "
            "machine; it is moved to the CPU. To train it further here "
            "(warm_start, partial_fit), set_params(device='cpu') first.",
            RuntimeWarning,
        )
        return torch.device("cpu")
    raise ValueError(
        f"device={device!r} was requested but is not available on this machine. "
        "Use device='cpu', or device='auto' to pick the best available device."
    )


def cpu_fast_path(device: torch.device) -> bool:
    """Whether skmdn's CPU-only fast paths apply to work on ``device``.

    On the CPU: training steps in blocks on worker threads, inference chunks
    on worker threads, tanh by the fastest exact form, the head's product
    padded for float32. On any other device (CUDA, MPS) the plain torch path
    runs instead, one kernel stream and torch's own tanh. Every such choice
    in the package goes through this function, so that the tests can run the
    accelerator path on a CPU-only machine.
    """
    return device.type == "cpu"


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
        warn_user(
            "MPS does not support float64; training in float32 instead.",
            RuntimeWarning,
        )
        dtype = torch.float32
    return dtype


def check_finite_targets(y: np.ndarray) -> None:
    """Raise a ValueError that says what to do if ``y`` holds NaN or infinity
    (a score, a metric or a plot would otherwise be NaN or silently biased)."""
    if not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinity; remove or impute those rows.")


def target_shape(y: np.ndarray, univariate: bool, n_outputs: int) -> np.ndarray:
    """``y`` shaped as a model of one output takes it: (n,) for a model fitted
    on 1-D y, (n, 1) for one fitted on a one-column y; either form is
    accepted for both. Other shapes are returned as they are."""
    if univariate and y.ndim == 2 and y.shape[1] == 1:
        return y[:, 0]
    if not univariate and n_outputs == 1 and y.ndim == 1:
        return y[:, None]
    return y


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


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """Return a C-contiguous float64 numpy array of ``tensor`` (on the CPU).

    Contiguous so that numpy reductions sum in the same order whatever the
    layout the tensor had (results are then bit-identical across paths). A
    tensor on an accelerator comes to the CPU in its own dtype first and is
    converted there: MPS cannot write float64 at all, not even into a CPU
    tensor.
    """
    tensor = tensor.detach().cpu()  # the tensor itself if on the CPU
    if tensor.dtype == torch.float64 and tensor.is_contiguous():
        return tensor.numpy()
    out = torch.empty(tensor.shape, dtype=torch.float64, device="cpu")
    return out.copy_(tensor).numpy()  # one pass whatever the layout


def tensor_view(a: np.ndarray) -> torch.Tensor:
    """A CPU tensor of ``a`` for reading only: its memory when torch can share it.

    Torch cannot share arrays with negative strides (``X[::-1]``) or
    non-native byte order; those are copied. ``torch.from_numpy`` also warns
    once per process about read-only arrays (a memory-mapped file, a
    broadcast view) because writing to the tensor would be undefined; skmdn
    only reads these views, so the warning, which would otherwise reach
    users, is silenced here: only for the first read-only array, under a
    lock. ``warnings.catch_warnings`` puts back the whole process-wide filter
    list when it exits, so on every call (inference worker threads call this
    per chunk) it would drop filters other threads set meanwhile, and two
    overlapping calls could leave the "ignore" filter installed for good.

    Examples
    --------
    >>> import numpy as np
    >>> tensor_view(np.arange(3.0)[::-1])
    tensor([2., 1., 0.], dtype=torch.float64)
    """
    a = np.asarray(a)
    if not a.dtype.isnative or any(step < 0 for step in a.strides):
        a = np.array(a, dtype=a.dtype.newbyteorder("="), order="C")
    if a.flags.writeable or (
        _read_only_warned.is_set() and not torch.is_warn_always_enabled()
    ):
        return torch.from_numpy(a)  # torch has nothing (more) to warn about
    with _read_only_lock, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        tensor = torch.from_numpy(a)
    _read_only_warned.set()
    return tensor


# Set once torch.from_numpy has met a read-only array: its warning about them
# is issued at most once per process (TORCH_WARN_ONCE; every time after
# torch.set_warn_always(True)), so later ones need no filter.
_read_only_warned = threading.Event()


def lock_renewed_after_fork(namespace: dict, name: str) -> threading.Lock:
    """A new lock, stored as ``namespace[name]`` (a module's ``globals()``),
    that a forked child replaces with a free one.

    A fork copies a lock as it is: one held by another thread of the parent
    at that moment would never be released in the child, whose first use
    would wait for ever. POSIX only (Windows cannot fork).
    """
    namespace[name] = threading.Lock()
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(
            after_in_child=lambda: namespace.__setitem__(name, threading.Lock())
        )
    return namespace[name]


_read_only_lock = lock_renewed_after_fork(globals(), "_read_only_lock")


_ENCODE_ADVICE = (
    "MDNRegressor needs numeric input: encode string or categorical columns "
    "first, e.g. with sklearn.preprocessing.OneHotEncoder or OrdinalEncoder in "
    "a sklearn.compose.ColumnTransformer."
)
_TIME_ADVICE = (
    "MDNRegressor needs numbers, and how times convert to them (the unit, "
    "the origin) is a choice: convert them first, e.g. to seconds since a "
    "reference time with (t - t0) / np.timedelta64(1, 's'), or to features "
    "such as the hour or the day of the year."
)
_TARGET_ADVICE = (
    "MDNRegressor is a regressor and needs a real-valued target; for class "
    "labels use a classifier."
)


# What to do about non-finite values, appended to scikit-learn's messages that
# only say what is wrong (its message for NaN in X already names imputers).
_NON_FINITE_ADVICE = {
    ("X", "infinity"): (
        "Replace the infinite values (for example clip them, or treat them "
        "as missing and impute) or drop those rows: np.isfinite(X).all(axis=1) "
        "selects the finite rows."
    ),
    ("y", "NaN"): (
        "A target must be observed: drop the rows with a missing target, "
        "e.g. keep = ~np.isnan(y) (for several outputs "
        "~np.isnan(y).any(axis=1)), then fit(X[keep], y[keep])."
    ),
    ("y", "infinity"): (
        "A target must be finite: drop those rows or model a transformed "
        "target; np.isfinite(y) marks the finite values."
    ),
}
_NON_FINITE_MESSAGE = re.compile(r"^Input (X|y) contains (NaN|infinity)")


@contextmanager
def non_finite_advice() -> Iterator[None]:
    """Add what to do to scikit-learn's errors for NaN or infinite X or y.

    Also silences numpy's "invalid value" warning inside: scikit-learn's fast
    finiteness check sums the data, and finite values near 1.8e308 of both
    signs overflow that sum to ``inf - inf`` (it then checks element by
    element, correctly), so valid data warned on every fit and predict.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.utils import check_array
    >>> with non_finite_advice():  # doctest: +ELLIPSIS
    ...     check_array(np.array([[np.inf]]), input_name="X")
    Traceback (most recent call last):
    ...
    ValueError: Input X contains infinity ... Replace the infinite values ...
    """
    try:
        with np.errstate(invalid="ignore"):
            yield
    except ValueError as error:
        match = _NON_FINITE_MESSAGE.match(str(error))
        advice = _NON_FINITE_ADVICE.get(match.groups()) if match else None
        if advice is None:
            raise
        raise ValueError(f"{str(error).rstrip()} {advice}") from error


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _first_non_number(values: np.ndarray):
    value = next((v for v in values.ravel() if not _is_number(v)), None)
    return value.item() if isinstance(value, np.generic) else value


def _check_frame_columns(frame, dtypes, name: str, advice: str) -> None:
    """Raise for the columns of a data frame that are not numbers, naming them.

    A column of a numeric or boolean dtype passes; one that converts to
    float64 (numbers in an object or categorical column) passes too.
    Non-numeric columns are reported first, with ``advice``; then datetime
    and timedelta columns (numpy's or time-zone aware).

    Parameters
    ----------
    frame : data frame
        A pandas or polars data frame (anything with ``columns`` and
        ``frame[column]``).
    dtypes : iterable
        ``frame.dtypes``, one per column.
    name : str
        ``'X'`` or ``'y'``, used in the messages.
    advice : str
        What to do about non-numeric columns.
    """
    bad, times = [], []
    for column, dtype in zip(frame.columns, dtypes, strict=True):
        if getattr(dtype, "kind", "O") in "biuf":
            continue
        if getattr(dtype, "kind", "O") in "mM":  # numpy's or time-zone aware
            times.append(f"{column!r} ({dtype})")
            continue
        try:
            np.asarray(frame[column], dtype=np.float64)
        except (TypeError, ValueError):
            bad.append(f"{column!r} ({dtype})")
    if bad:
        raise ValueError(f"{name} has non-numeric column(s) {', '.join(bad)}. {advice}")
    if times:
        raise ValueError(
            f"{name} has datetime or timedelta column(s) {', '.join(times)}. "
            f"{_TIME_ADVICE}"
        )


def check_input_kind(a, name: str, *, max_ndim: int = 2) -> None:
    """Raise a clear error for inputs that scikit-learn reports cryptically.

    Catches string, categorical, datetime and timedelta data (naming the
    offending columns of a data frame), complex numbers, a sparse target and
    arrays with more than ``max_ndim`` axes, each with a message that says
    what to do. Anything else is left to
    :func:`sklearn.utils.validation.validate_data`.

    Parameters
    ----------
    a : array-like, sparse matrix, data frame or None
        The input to check.
    name : str
        ``'X'`` or ``'y'``, used in the messages.
    max_ndim : int, default=2
        Largest number of axes allowed.

    Examples
    --------
    >>> import numpy as np
    >>> check_input_kind(np.ones((3, 2)), "X")
    >>> check_input_kind(np.array([["a", "b"]]), "X")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: X contains non-numeric values such as 'a'. MDNRegressor ...
    """
    if a is None:
        return
    advice = _TARGET_ADVICE if name == "y" else _ENCODE_ADVICE
    if sparse.issparse(a):
        if name == "y":
            raise TypeError(
                "y is a sparse matrix, but MDNRegressor needs a dense target; "
                "convert it with y.toarray()."
            )
        return  # densified chunk by chunk
    dtypes = getattr(a, "dtypes", None)
    if dtypes is not None and hasattr(a, "columns"):  # a data frame
        _check_frame_columns(a, dtypes, name, advice)
        return
    try:
        array = np.asarray(a)
    except ValueError as error:  # ragged nested sequences
        raise ValueError(
            f"{name} could not be read as a rectangular array ({error}). Make "
            "every row the same length."
        ) from error
    if array.ndim > max_ndim:
        want = "(n_samples, n_features)" if name == "X" else "(n_samples, n_outputs)"
        raise ValueError(
            f"{name} must have at most {max_ndim} dimensions {want}; got an array "
            f"of shape {array.shape}. Flatten the trailing axes first, e.g. "
            f"{name}.reshape(len({name}), -1)."
        )
    if name == "X" and array.ndim == 1:  # scikit-learn's error prints every value
        raise ValueError(
            f"X is 1-D (shape {array.shape}), but MDNRegressor needs X of shape "
            "(n_samples, n_features). Reshape your data: X.reshape(-1, 1) if it "
            "holds one feature, X.reshape(1, -1) if it is one sample."
        )
    if array.dtype.kind in "mM":
        raise ValueError(
            f"{name} has datetime or timedelta values ({array.dtype}). {_TIME_ADVICE}"
        )
    if array.dtype.kind == "c":
        raise ValueError(
            f"Complex data not supported: {name} has complex values. MDNRegressor "
            "models real numbers; pass the real and imaginary parts as separate "
            "columns."
        )
    if array.dtype.kind in "USO":
        try:
            array.astype(np.float64)
        except ValueError:
            example = _first_non_number(array)
            raise ValueError(
                f"{name} contains non-numeric values such as {example!r}. {advice}"
            ) from None
        except TypeError:
            return  # e.g. dicts in an object array: scikit-learn's TypeError


def overflow_safe_weights(w: np.ndarray | None) -> np.ndarray | None:
    """``w`` divided by the power of two just above its largest value.

    Exact, so a weighted mean rounds exactly as with ``w`` itself, but sums
    of the weights (and of weighted terms) cannot overflow: weights of 1e308
    act as unit weights instead of giving an infinite total and a NaN mean.
    None (no weights) is returned as it is.

    Examples
    --------
    >>> import numpy as np
    >>> float(overflow_safe_weights(np.array([1e308, 1e308])).sum())
    1.1125369292536007
    """
    if w is None:
        return None
    w = np.asarray(w, dtype=np.float64)
    return np.ldexp(w, -np.frexp(np.max(w))[1])


def power_of_two_unit(largest: np.ndarray) -> np.ndarray:
    """A power of two at or above each of ``largest`` (>= 0), to divide by.

    ``2^e`` with ``largest < 2^e``, kept within ``2^-1021 .. 2^1023``: above,
    ``2^1024`` is infinite (there ``largest / unit < 2``); below, ``1 / 2^e``
    overflows (for subnormal values, whose quotient is still exact). Dividing
    by a power of two is exact, so values rescaled by the unit lose nothing.
    Zero gives ``2^-1021``; callers choose what zero or NaN rows get.

    Examples
    --------
    >>> import numpy as np
    >>> np.log2(power_of_two_unit(np.array([3.0, 1e300, 1e-320])))
    array([    2.,   997., -1021.])
    """
    return np.ldexp(1.0, np.clip(np.frexp(largest)[1], -1021, 1023))


def check_sample_weight(sample_weight, X) -> np.ndarray:
    """Validate ``sample_weight`` for ``X``: finite, non-negative, not all zero.

    scikit-learn checks the values are finite (unless ``assume_finite=True``,
    which would let a NaN weight drop its row silently or make a score NaN;
    checked here too); the sign is checked here with a message that says what
    to do, and so are all-zero weights (which scikit-learn rejects itself only
    from version 1.9 on: before, they reached the training code and crashed
    there).

    Returns a float64 array of shape (n_samples,) (ones if ``sample_weight``
    is None).

    Examples
    --------
    >>> import numpy as np
    >>> check_sample_weight(None, np.zeros((2, 1)))
    array([1., 1.])
    >>> check_sample_weight([1.0, -1.0], np.zeros((2, 1)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: sample_weight must be non-negative; its smallest value is -1.0. ...
    """
    sw = _check_sample_weight(sample_weight, X, dtype=np.float64)
    if not np.isfinite(sw).all():  # sklearn's check is off with assume_finite
        raise ValueError(
            "sample_weight contains NaN or infinity, which scikit-learn did not "
            "check because sklearn.set_config(assume_finite=True) is on: give "
            "finite weights (0 to ignore a sample)."
        )
    if sw.size and sw.min() < 0:
        raise ValueError(
            f"sample_weight must be non-negative; its smallest value is "
            f"{float(sw.min())!r}. Give a sample weight 0 to ignore it."
        )
    if sw.size and not sw.any():
        raise ValueError(
            "Sample weights must contain at least one non-zero number: with "
            "every sample_weight 0 there is nothing to fit or score."
        )
    return sw


def torch_thread_budget() -> int:
    """Number of intra-op threads torch may use for one fit in this process.

    The smaller of :func:`torch.get_num_threads` and ``OMP_NUM_THREADS``.
    Parallel back-ends set that variable in their worker processes so that
    ``n_jobs`` workers share the cores instead of each starting one thread per
    core: joblib's default ``loky`` backend sets it to ``cpu_count() // n_jobs``
    and dask's nanny to 1. Torch reads it only when its thread pool starts, so
    a process where torch was initialised before the variable was set (or
    changed) would otherwise ignore it. Limits set with
    ``threadpoolctl.threadpool_limits`` are already reflected in
    :func:`torch.get_num_threads`, which shares OpenMP's thread count.
    """
    budget = torch.get_num_threads()
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) > 0:
        budget = min(budget, int(value))
    return max(budget, 1)


def thread_count(n_threads: int | None, rows_per_call: int) -> int:
    """The number of torch threads for work on ``rows_per_call`` rows at a time.

    ``n_threads`` if given. Otherwise one thread below :data:`SMALL_BATCH`
    rows (small kernels gain nothing from a second thread, and one that waits
    for a busy core makes every step many times slower), and
    :func:`torch_thread_budget` threads above.

    Examples
    --------
    >>> thread_count(3, 10)
    3
    >>> thread_count(None, 256)
    1
    """
    if n_threads is not None:
        return int(n_threads)
    return 1 if rows_per_call < SMALL_BATCH else torch_thread_budget()


class ThreadChooser:
    """Choose, block by block, between one thread and the thread budget by
    timing both (in training: the number of worker threads of a blocked step,
    see :class:`~skmdn._backprop.BlockedBackprop`).

    A second thread that waits for a core busy with another process makes
    every parallel kernel wait for a scheduler slice: a 1e6-row ``predict``
    took 18 s with 2 threads instead of 0.2 s (measured here), and no rule
    fixed in advance can know whether the machine is busy. (Inference now
    runs its chunks on worker threads with one torch thread each instead,
    which a busy core only slows in proportion.) So, for repeated blocks of
    the same work (large training batches), the first blocks are timed with
    the budget and with one thread, the faster per row is used, and the
    other is probed again after ``reprobe`` blocks, then after twice as many
    each time it loses (a probe on a busy machine costs a slow block). Each
    count is judged by the fastest of its last :attr:`window` timed blocks,
    so that one slow block (a moment's noise on a shared VM) does not hand
    the choice to the slower count until the next probe, while a count made
    slow by another process loses after ``window`` blocks. With
    an explicit ``n_threads``, a budget of one, blocks below
    :data:`SPLIT_BATCH` rows or a non-CPU device the choice is fixed
    (:func:`thread_count`).

    Examples
    --------
    >>> chooser = ThreadChooser(None, rows=10)  # small blocks: always 1
    >>> chooser.choose()
    1
    """

    #: timed blocks per count that its estimate looks back on
    window = 3

    def __init__(
        self,
        n_threads: int | None,
        rows: int,
        device: torch.device | None = None,
        reprobe: int = 16,
    ) -> None:
        budget = torch_thread_budget()
        adaptive = (
            n_threads is None
            and rows >= SPLIT_BATCH
            and budget > 1
            and (device is None or cpu_fast_path(device))
        )
        self.fixed = None if adaptive else thread_count(n_threads, rows)
        self.rows = rows
        # the budget twice: its first block also pays the warm-up
        self._probes = [budget, 1, budget]
        self._seconds_per_row: dict[int, deque[float]] = {}
        self._count = 0
        self._reprobe = self._interval = reprobe
        self._next_probe = len(self._probes) + reprobe
        self._best: int | None = None

    def _estimate(self, threads: int) -> float:
        """Seconds per row of ``threads``: the fastest of its recent blocks."""
        return min(self._seconds_per_row[threads])

    def choose(self) -> int:
        """The number of threads for the next block."""
        if self.fixed is not None:
            return self.fixed
        i, self._count = self._count, self._count + 1
        if i < len(self._probes):
            return self._probes[i]
        best = min(self._seconds_per_row, key=self._estimate)
        if best != self._best:  # a probe won (or the first choice): start over
            self._best, self._interval = best, self._reprobe
            self._next_probe = i + self._interval
        if i == self._next_probe:
            self._interval *= 2
            self._next_probe = i + self._interval
            return next(t for t in self._seconds_per_row if t != best)
        return best

    def record(self, threads: int, seconds: float, rows: int) -> None:
        """Report how long the last block of ``rows`` rows took."""
        if self.fixed is None and rows > 0:
            if threads not in self._seconds_per_row:
                self._seconds_per_row[threads] = deque(maxlen=self.window)
            self._seconds_per_row[threads].append(seconds / rows)

    def preferred(self) -> int:
        """The faster choice so far, without counting a block (for other
        work between blocks, such as a validation pass)."""
        if self.fixed is not None:
            return self.fixed
        if not self._seconds_per_row:
            return self._probes[0]
        return min(self._seconds_per_row, key=self._estimate)

    @contextmanager
    def block(self, rows: int) -> Iterator[int]:
        """Run one block of ``rows`` rows, timed and recorded, with torch at
        one thread; torch's setting is restored afterwards.

        Yields the chosen count: the number of worker threads the block runs
        (see :class:`~skmdn._backprop.BlockedBackprop`), each with one torch
        thread.

        Only blocks of the size given at construction are timed and counted:
        a smaller block (an epoch's last batch) runs with :meth:`preferred`.
        Its time per row is higher at any thread count, and recorded against
        one count it would make that count lose (measured: it sent 40 of 108
        batches of 8192 rows to one thread, 1.5 times slower).
        """
        if self.fixed is not None:
            if torch.get_num_threads() == 1:
                yield self.fixed  # nothing to set or time (training's small steps)
            else:
                with torch_threads(1):
                    yield self.fixed
            return
        timed = rows == self.rows
        threads = self.choose() if timed else self.preferred()
        began = time.perf_counter()
        with torch_threads(1):
            yield threads
        if timed:
            self.record(threads, time.perf_counter() - began, rows)


# torch.set_num_threads(n) sets the calling thread's count and also the
# process default: the count a thread takes at its first use of torch (from
# then on its count is its own). skmdn sets one thread for a while in calling
# threads and in worker threads, and puts back each calling thread's own count
# afterwards; the default, which every such call changes, is shared. Calls
# overlapping in several threads (a web server, a threading grid search) could
# leave it at one for every thread started later: a thread that began using
# torch during another call has one thread as its own count, and was the last
# to store it (four server threads predicting with n_threads=2: 15 of 20
# rounds). So the first of overlapping calls records the default and the last
# one to end puts it back.
_threads_lock = lock_renewed_after_fork(globals(), "_threads_lock")
_calls = 0  # calls inside torch_threads or run_blocks, in any thread
_default = 1  # the process default when the first of them began
_stored = 0  # the count skmdn stored last (0: none yet)


if hasattr(os, "register_at_fork"):  # a forked child has no call running
    os.register_at_fork(after_in_child=lambda: globals().update(_calls=0))


def _set_torch_threads(n_threads: int) -> None:
    """:func:`torch.set_num_threads`, remembered as the default skmdn left."""
    global _stored
    with _threads_lock:
        torch.set_num_threads(n_threads)
        _stored = n_threads


def _begin_call(own: int, n_threads: int) -> None:
    """Count a call that may change torch's process default (see above) and
    set the calling thread, whose count is ``own``, to ``n_threads``."""
    global _calls, _default, _stored
    with _threads_lock:
        if _calls == 0:
            # A thread at one, other than the main thread, after skmdn left
            # more as the default: one that took skmdn's one at its first use
            # of torch, most likely (a server's request thread); taken as the
            # default, the end of the call would put one back for every
            # thread (four threads predicting: 2 of 4 runs).
            tainted = own == 1 < _stored
            if not tainted or threading.current_thread() is threading.main_thread():
                _default = _stored = own
        _calls += 1
        if n_threads != own:
            torch.set_num_threads(n_threads)
            _stored = n_threads


def _end_call(own: int) -> None:
    """Set the calling thread back to ``own`` and end the call; the last
    call to end puts back the default the first one found."""
    global _calls, _stored
    with _threads_lock:
        if torch.get_num_threads() != own:
            torch.set_num_threads(own)
            _stored = own
        _calls = max(_calls - 1, 0)
        if _calls == 0 and _stored != _default:
            if own == _default:  # the calling thread's count stays the same
                torch.set_num_threads(_default)
            else:  # another thread can set the default, not this one's count
                helper = threading.Thread(
                    target=torch.set_num_threads, args=(_default,)
                )
                helper.start()
                helper.join()
            _stored = _default


def one_torch_thread() -> None:
    """Set the calling thread to one torch thread (a worker's initializer).

    Torch sets a thread's count from the process default at the thread's
    first use of torch, even after a :func:`torch.set_num_threads` there: a
    worker whose first kernel came after another thread had stored two
    threads as the default ran on two (found with fits in two threads at
    once, whose results then depended on the timing). So torch is used
    first, then set.
    """
    torch.get_num_threads()
    _set_torch_threads(1)


@contextmanager
def torch_threads(n_threads: int) -> Iterator[int]:
    """Run the block with ``n_threads`` torch threads, then restore the setting.

    The setting applies to the calling thread, and also becomes the count
    that threads using torch for the first time afterwards start with (a
    thread that first uses torch during a fit keeps one thread); once the
    last of the calls running in any thread ends, that count is back to what
    it was before the first. Yields the number of threads in force at the
    start; whatever the block sets, the previous setting is back afterwards.

    Examples
    --------
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1) as n:
    ...     n, torch.get_num_threads()
    (1, 1)
    >>> torch.get_num_threads() == before
    True
    """
    previous = torch.get_num_threads()
    _begin_call(previous, n_threads)
    try:
        yield n_threads
    finally:  # also undoes changes made inside the block (ThreadChooser)
        _end_call(previous)


def run_blocks(
    fn: Callable[[slice], None], blocks: Sequence[slice], workers: int
) -> None:
    """Call ``fn(block)`` for every block, on up to ``workers`` threads.

    Each worker thread runs with one torch thread. Work that releases the GIL
    (torch kernels, numpy on large arrays) then runs in parallel, and a core
    busy with another process slows it only in proportion: no OpenMP barrier
    waits for it. ``fn`` must only write the rows of its own block, so the
    result is the same whatever ``workers``. An error in a block reaches the
    caller, and blocks not yet started are dropped.

    Examples
    --------
    >>> import numpy as np
    >>> out = np.zeros(6)
    >>> def double(rows):
    ...     out[rows] = 2 * np.arange(6)[rows]
    >>> run_blocks(double, [slice(0, 3), slice(3, 6)], workers=2)
    >>> out
    array([ 0.,  2.,  4.,  6.,  8., 10.])
    """
    workers = min(workers, len(blocks))
    if workers <= 1:
        for block in blocks:
            fn(block)
        return
    previous = torch.get_num_threads()
    _begin_call(previous, previous)
    pool = ThreadPoolExecutor(workers, initializer=one_torch_thread)
    try:
        for future in [pool.submit(fn, block) for block in blocks]:
            future.result()
    finally:  # after an error or an interrupt, drop the blocks not started
        pool.shutdown(wait=True, cancel_futures=True)
        # a worker's one thread also became the count every thread started
        # later in the process gets (a web server's, joblib's)
        _end_call(previous)


# numpy sums fewer than 8 values left to right (8 or more pairwise); adding
# whole slices in that order gives the same bits in n - 1 vectorised passes
# instead of a short reduction per row (16384 x 5 float64: about 60 against
# 290 us, measured), which made the weights half of predict's and sample's
# work after the network, and the sums over components and outputs most of
# the mode's search.
SHORT_SUM_MAX = 7


def sum_last(a: np.ndarray) -> np.ndarray:
    """``a.sum(axis=-1)``, the same bits, by slices when the last axis is
    short (see :data:`SHORT_SUM_MAX`)."""
    if not 0 < a.shape[-1] <= SHORT_SUM_MAX:
        return a.sum(axis=-1)
    total = a[..., 0].copy()
    for k in range(1, a.shape[-1]):
        total += a[..., k]
    return total


def max_last(a: np.ndarray) -> np.ndarray:
    """``a.max(axis=-1)`` (NaN if any value is), by slices when the last
    axis is short (see :data:`SHORT_SUM_MAX`)."""
    if not 0 < a.shape[-1] <= SHORT_SUM_MAX:
        return a.max(axis=-1)
    top = a[..., 0].copy()
    for k in range(1, a.shape[-1]):
        np.maximum(top, a[..., k], out=top)
    return top
