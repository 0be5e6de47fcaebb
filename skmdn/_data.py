"""Training data preparation: standardisation statistics, packed tensors and
the quantiles that start the component means.

The statistics and the packing run over chunks of rows as torch operations
on zero-copy views of the validated numpy arrays, accumulating in float64
with nothing N-sized built besides the packed data, on one torch thread: a
pass over memory gained little from a second (packing 1e6 x 13 values: 43
against 51 ms), and one thread cannot stall behind a core that another
process keeps busy (the hazard that :class:`~skmdn._utils.ThreadChooser`
handles for training steps). On 1e6 x 10 float32 rows (AMD EPYC VM, one
thread) the statistics took 62 ms with numpy, whose column reductions over a
last axis of 10 elements run one element at a time, and 22 ms here; packing
108 and 51 ms. Chunks on two worker threads with one torch thread each
(:func:`~skmdn._utils.run_blocks`) were slower still: the statistics of
1e6 x 10 float32 rows took 54-58 against 35-36 ms, the packing 45 against
48-52 ms (twelfth session). Where the compiled extension is built, the
packing is one pass per array (:func:`~skmdn._fused.pack_columns`, the same
bits, no temporaries): 1e6 x 13 float32 rows in 34 against 50 ms, most of it
the first touch of the packed tensor's pages.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse

from . import _fused
from ._utils import (
    overflow_safe_weights,
    power_of_two_unit,
    tensor_view,
    torch_threads,
)

__all__ = [
    "CHUNK_ROWS",
    "dense_rows",
    "dominated_columns",
    "pack_rows",
    "weighted_mean_scale",
    "weighted_quantiles",
]

# Rows per chunk of the statistics and the packing: 65536 x 10 float64
# temporaries (5 MB) are large enough that a chunk's handful of kernels
# outweighs its overhead.
CHUNK_ROWS = 65536


def _chunks(n: int) -> list[slice]:
    return [slice(i, min(i + CHUNK_ROWS, n)) for i in range(0, n, CHUNK_ROWS)]


def dense_rows(a, rows: slice | np.ndarray) -> np.ndarray:
    """Rows of ``a`` as a dense array: a view of a dense array, a densified
    copy of a sparse matrix's (one chunk at a time: nothing N-sized)."""
    return a[rows].toarray() if sparse.issparse(a) else a[rows]


class _Rows:
    """Chunks of rows of a 2-D array or CSR matrix as CPU tensors."""

    def __init__(self, a) -> None:
        self.a = a if sparse.issparse(a) else tensor_view(a)
        self.width = a.shape[1]

    def slice(self, sl: slice) -> torch.Tensor:
        if isinstance(self.a, torch.Tensor):
            return self.a[sl]
        return torch.from_numpy(dense_rows(self.a, sl))

    def take(self, index: torch.Tensor) -> torch.Tensor:
        if isinstance(self.a, torch.Tensor):
            return self.a.index_select(0, index)
        return torch.from_numpy(dense_rows(self.a, index.numpy()))


def _abs_max(t: torch.Tensor) -> torch.Tensor:
    """Column maxima of ``|t|`` for a 2-D ``t``, by halving.

    Folds the bottom half of the rows onto the top with an elementwise
    ``maximum`` until few rows are left: torch's reductions over the first
    axis of a row-major array with few columns run one column element at a
    time (``aminmax(dim=0)`` of 65536 x 10 floats took 1.5 ms on one thread,
    this 0.25 ms).
    """
    x = t.abs()
    if x.shape[1] == 1:  # one column is a contiguous reduction
        return x.amax(0)
    n = len(x)
    while n > 64:
        half = n // 2  # rows n - half .. n - 1 onto 0 .. half - 1
        torch.maximum(x[:half], x[n - half : n], out=x[:half])
        n -= half
    return x[:n].amax(0)


def _cpu(a, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``a`` as a CPU tensor, whatever torch's default device (read only: the
    fitted statistics of a model loaded with ``mmap_mode='r'`` are read-only
    memory maps, which :func:`tensor_view` takes without torch's warning)."""
    return torch.as_tensor(tensor_view(a), dtype=dtype, device="cpu")


@torch_threads(1)  # see the module docstring
def weighted_mean_scale(a: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted column means and standard deviations (zero spread -> 1).

    Each column is first divided by the power of two just above its largest
    magnitude (exact; at most 2**1023, as 2**1024 overflows), so that squares
    do not overflow for values near the float64 limit (e.g. 1e200, or up to
    1.8e308) and tiny units (e.g. 1e-14) are not mistaken for a constant
    column, nor is a spread tiny next to the values (e.g. 1e8 + 1e-4 noise).
    Two passes over chunks of rows, accumulated in float64 with no N-sized
    temporary: the largest magnitudes, then weighted sums of the
    scaled values and of their squares around a pilot mean (the first
    chunk's), which keeps the one-pass variance formula free of
    cancellation.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[1.0, 5.0], [3.0, 5.0]])
    >>> weighted_mean_scale(a, np.array([1.0, 3.0]))
    (array([2.5, 5. ]), array([0.8660254, 1.       ]))
    """
    with np.errstate(over="ignore"):
        total = float(np.sum(w))
    if not total < 2.0**1020:  # weights near 1e308: sums (of squares) overflow
        w = overflow_safe_weights(w)  # exact: the same means
        total = float(np.sum(w))
    t, tw = _Rows(a), tensor_view(w)
    chunks = _chunks(a.shape[0])
    part = torch.zeros(len(chunks), 2, a.shape[1], dtype=torch.float64, device="cpu")

    for i, sl in enumerate(chunks):
        part[i, 0] = _abs_max(t.slice(sl))
    largest_abs = part[:, 0].amax(0).numpy()
    unit = power_of_two_unit(largest_abs)  # |a| / unit < 2, exact
    unit[~(largest_abs > 0)] = 1.0
    inverse = torch.from_numpy(1.0 / unit)  # a power of two: exact products
    # Row-major copies whatever the layout of ``a`` (a DataFrame's is
    # column-major): the order of the sums, and so their rounding, depends
    # on it, and a fit must not.
    shift = torch.mul(t.slice(chunks[0]).contiguous(), inverse).mean(0)

    for i, sl in enumerate(chunks):
        c = t.slice(sl).to(
            torch.float64, copy=True, memory_format=torch.contiguous_format
        )
        c.mul_(inverse).sub_(shift)
        torch.mv(c.t(), tw[sl], out=part[i, 0])
        torch.mv(c.square_().t(), tw[sl], out=part[i, 1])
    s1, s2 = part.sum(0).numpy()
    mean = s1 / total
    scale = np.sqrt(np.maximum(s2 / total - mean**2, 0.0))
    mean += shift.numpy()
    # In units of ``unit`` a float64 step of the largest values is 2**-53
    # or more. The statistics of a constant column are zero up to rounding
    # far below that (the pilot mean is off by a few steps, its square by
    # a few more); a spread of a step or more is data, such as 1e8 plus
    # noise of 1e-4 (1e-12 relative, 7000 steps of 1.5e-8).
    constant = ~(scale > 2.0**-52)
    mean, scale = mean * unit, scale * unit
    scale[constant] = 1.0
    return mean, scale


@torch_threads(1)  # see the module docstring
def pack_rows(
    rows: np.ndarray | None,
    columns: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    dtype: torch.dtype,
) -> torch.Tensor:
    """Rows ``rows`` (all if None) of each array, standardised, side by side.

    ``columns`` lists ``(array, mean, scale)`` triples of 2-D arrays with one
    row per sample; the result is one ``(len(rows), total width)`` tensor of
    ``dtype``, ``(array[rows] - mean) / scale`` computed in float64 and
    rounded once, in one compiled pass per array where it applies
    (:func:`~skmdn._fused.pack_columns`), else chunk by chunk, so that
    nothing N-sized is built besides it.
    """
    n = columns[0][0].shape[0] if rows is None else len(rows)
    width = sum(a.shape[1] for a, _, _ in columns)
    out = torch.empty(n, width, dtype=dtype, device="cpu")
    views = [(_Rows(a), _cpu(m, torch.float64), _cpu(s)) for a, m, s in columns]
    index = None if rows is None else _cpu(rows, torch.int64)

    start = 0
    for t, mean, scale in views:
        stop = start + t.width
        if isinstance(t.a, torch.Tensor) and _fused.pack_columns(
            t.a, index, mean, scale, out[:, start:stop]
        ):  # one compiled pass, the same bits
            start = stop
            continue
        for sl in _chunks(n):
            part = t.slice(sl) if index is None else t.take(index[sl])
            part = part.to(torch.float64, copy=True).sub_(mean).div_(scale)
            out[sl, start:stop] = part
        start = stop
    return out


# A column's standard deviation this many times the spread of its central 90 %
# (of a normal sample, 1) is dominated by a few extreme values (see
# dominated_columns).
_DOMINATED = 30.0
_ROBUST_ROWS = 10_000


def dominated_columns(a, w: np.ndarray, scale: np.ndarray) -> list[tuple[int, float]]:
    """Columns whose standard deviation is dominated by a few extreme values.

    Standardising by such a standard deviation squeezes the other rows into
    a tiny range: one value of 1e4 among 2000 of spread 1 cost a fit 0.13
    nats in ``X`` and 2.7 in ``y`` (where ``min_scale`` then floors the
    density's scales far above the noise), 1e6 made it useless (measured,
    sine data). The robust spread is ``(q95 - q05) / 3.29`` (a normal's
    standard deviation) of an evenly spaced subsample of at most
    :data:`_ROBUST_ROWS` rows (weighted; 2 ms at 1e6 rows of 10 columns, 20
    ms with a subsample ten times larger): a column is listed, as ``(index,
    ratio)``, when ``scale`` is more than
    :data:`_DOMINATED` times it. A column whose central 90 % is one value
    (a rare category, a zero-inflated count) is not: there is no spread to
    squeeze.

    >>> import numpy as np
    >>> a = np.column_stack([np.arange(100.0), np.r_[np.arange(99.0), 1e6]])
    >>> w = np.ones(100)
    >>> [(j, round(r)) for j, r in dominated_columns(a, w, a.std(0))]
    [(1, 3637)]
    """
    every = -(-a.shape[0] // _ROBUST_ROWS)
    rows = dense_rows(a, slice(None, None, every))
    q05, q95 = weighted_quantiles(rows, w[::every], np.array([0.05, 0.95]))
    robust = (0.5 * q95 - 0.5 * q05) / 1.645  # halves: no overflow near 1e308
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = scale / robust
    return [(int(j), float(ratio[j])) for j in np.flatnonzero(ratio > _DOMINATED)
            if robust[j] > 0]  # fmt: skip


def weighted_quantiles(a: np.ndarray, w: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Inverted-CDF weighted quantiles of each column (no interpolation), so that
    integer weights give exactly the quantiles of the repeated data.

    The ``q`` quantile is the first value in sorted order whose cumulative
    weight reaches ``q`` times the total weight (as numpy's ``inverted_cdf``
    on repeated data), rows of zero weight left out. The weights are first
    scaled by a power of two, so that their sums cannot overflow and round
    exactly as the unscaled sums would: sums of integer weights stay exact
    (up to a total of 2**53), so they reach ``q`` times the total exactly
    where the repeated data do.

    The estimator starts its components' means at quantiles of ``y``.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[1.0], [2.0], [3.0]])
    >>> weighted_quantiles(a, np.array([1.0, 1.0, 2.0]), np.array([0.25, 0.75]))
    array([[1.],
           [3.]])
    """
    out = np.empty((len(q), a.shape[1]))
    if np.all(w == w[0]):  # the same order statistics, by an O(n) partition
        # cumulative weights 1..n: the first index whose sum reaches q n
        idx = np.clip(np.ceil(q * len(a)).astype(np.int64) - 1, 0, len(a) - 1)
        for j in range(a.shape[1]):
            out[:, j] = np.partition(a[:, j], np.unique(idx))[idx]
        return out
    keep = w > 0  # repeated no times: not even the 0 quantile
    w = np.ldexp(w[keep], -np.frexp(w.max())[1])  # exact: sums round as unscaled
    for j in range(a.shape[1]):
        column = a[keep, j]
        order = np.argsort(column, kind="stable")
        cum = np.cumsum(w[order])
        idx = np.searchsorted(cum, q * cum[-1], side="left")
        out[:, j] = column[order[np.minimum(idx, len(order) - 1)]]
    return out
