"""Exact univariate Gaussian-mixture machinery: CDF, quantiles and the HDR.

Every function works on a flat batch of ``N`` one-dimensional mixtures given
by weights ``w`` (N, K), means ``mu`` (N, K) and standard deviations ``s``
(N, K), and is vectorised over rows (no Python loop over rows): root
searches iterate on the whole batch and shrink to the rows not yet
converged. :class:`skmdn.GaussianMixture` delegates to these functions, one
flat row per (input row, output dimension) for marginals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import ndtr, ndtri

__all__ = [
    "XTOL",
    "HighestDensityRegion",
    "broadcast_to_rows",
    "mixture_cdf",
    "mixture_hdr",
    "mixture_logcdf",
    "mixture_pdf",
    "mixture_ppf",
    "refuse_target_column",
    "select_rows",
]

_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
_LOG_HALF = float(np.log(0.5))
_EPS = np.finfo(np.float64).eps
_MAX_ITER = 200
#: Accuracy of quantiles and HDR end points, relative to the smallest component
#: scale of the row (or float64 resolution of the root, whichever is larger).
XTOL = 1e-12
#: Standardised per-component grid used to bracket HDR end points (its
#: density only affects speed: correctness rests on modes and antimodes being
#: grid points); beyond 9 standard deviations a component has mass < 2e-19.
_HDR_GRID = np.array(
    [-9, -6, -4, -3, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 3, 4, 6, 9.0]
)


def _gather(
    arrays: tuple[np.ndarray, ...], rows: np.ndarray | None
) -> tuple[np.ndarray, ...]:
    return arrays if rows is None else tuple(a[rows] for a in arrays)


def mixture_pdf(
    x: np.ndarray,
    w: np.ndarray,
    mu: np.ndarray,
    s: np.ndarray,
    *,
    derivative: int = 0,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Density at ``x`` of shape (..., N), with ``derivative`` (0, 1 or 2)
    derivatives: ``p``, ``(p, p')`` or ``(p', p'')``."""
    z = (x[..., None] - mu) / s
    phi = w / s * _INV_SQRT_2PI * np.exp(-0.5 * z * z)
    if derivative == 0:
        return phi.sum(-1)
    d1 = -(phi * z / s).sum(-1)
    if derivative == 1:
        return phi.sum(-1), d1
    return d1, (phi * (z * z - 1.0) / (s * s)).sum(-1)


def _same_point(scale, x) -> np.ndarray:
    """Distance below which two mode ascents ending near ``x`` reached the
    same maximum: ``1e-5`` of the row's smallest scale, or 16 ulps of ``x``
    where that is coarser. Ascents to one maximum stop up to about ``1e-6``
    smallest scales apart (log p is flat to rounding there), and two distinct
    maxima that close differ in density by about 1e-10 of it, which moves no
    HDR. Not ``1e-9 |x|``, as before: far from zero (1e9 with 0.1 scales)
    that merged distinct modes, and the HDR missed the peak it surrounds."""
    return np.maximum(1e-5 * scale, 16 * _EPS * np.abs(x))


def _antimodes(modes, w, mu, s) -> np.ndarray:
    """A local minimum of the density between each pair of adjacent modes.

    ``modes`` (N, M) are local maxima; between two distinct adjacent ones
    ``p'`` changes sign from negative to positive, and the root is found by
    :func:`_root_search` on ``p'``. Pairs of equal modes give the mode itself.
    Returns shape (N, M - 1).
    """
    modes = np.sort(modes, axis=1)
    a, b = modes[:, :-1], modes[:, 1:]
    scale = s.min(1, keepdims=True)
    r, j = np.nonzero(b - a > _same_point(scale, b))
    out = a.copy()
    if r.size:
        lo, hi = a[r, j], b[r, j]
        margin = 1e-9 * (hi - lo)

        def fun(x, idx):
            rr = r[idx]
            return mixture_pdf(x, w[rr], mu[rr], s[rr], derivative=2)

        out[r, j] = _root_search(
            fun, lo + margin, hi - margin, 0.5 * (lo + hi), XTOL * scale[r, 0]
        )
    return out


def _distinct(modes, s) -> np.ndarray:
    """``modes`` (N, M) sorted, with the repeats of each row (ascents that
    ended at the same maximum, see :func:`_same_point`) moved to the end as
    copies of its first mode and the columns that only hold repeats dropped:
    ``K (K + 1) / 2`` ascents reach far fewer maxima, and every column costs
    a grid point and an antimode search."""
    modes = np.sort(modes, axis=1)
    if modes.shape[1] < 2:
        return modes
    tol = _same_point(s.min(1, keepdims=True), modes[:, 1:])
    new = np.concatenate(
        [np.ones_like(modes[:, :1], dtype=bool), np.diff(modes, axis=1) > tol], axis=1
    )
    order = np.argsort(~new, axis=1, kind="stable")  # distinct ones first
    out = np.where(new, modes, modes[:, :1])
    out = np.take_along_axis(out, order, axis=1)
    return out[:, : max(int(new.sum(1).max(initial=1)), 1)]


def mixture_cdf(
    x,
    w: np.ndarray,
    mu: np.ndarray,
    s: np.ndarray,
    *,
    upper: bool | np.ndarray = False,
) -> np.ndarray:
    """``F(x) = sum_k w_k Phi((x - mu_k) / s_k)`` for ``x`` of shape (..., N).

    A component of scale 0 is a point mass at ``mu_k``: its term steps from
    0 to ``w_k`` at ``x = mu_k`` (``F`` is right-continuous there).

    With ``upper=True`` (or a boolean mask broadcastable to ``x``) returns the
    survival function ``1 - F(x)`` computed from ``Phi(-z)``, which keeps full
    relative precision in the upper tail.
    """
    z = _standardise(x, mu, s)
    if isinstance(upper, bool):
        return (w * ndtr(-z if upper else z)).sum(-1)
    return (w * ndtr(np.where(np.asarray(upper)[..., None], -z, z))).sum(-1)


def _standardise(x, mu: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``z = (x - mu) / s`` (..., N, K), with a point mass (scale 0) at
    ``+inf`` from its mean on (the CDF steps to 1 there) and ``-inf`` below."""
    diff = np.asarray(x, dtype=np.float64)[..., None] - mu
    with np.errstate(divide="ignore", invalid="ignore"):
        z = diff / s
    if not (s > 0).all():
        z = np.where(s > 0, z, np.where(diff >= 0, np.inf, -np.inf))
    return z


def mixture_logcdf(
    x, log_w: np.ndarray, mu: np.ndarray, s: np.ndarray, *, upper: bool = False
) -> np.ndarray:
    """``log F(x)`` for ``x`` of shape (..., N), or ``log(1 - F(x))`` with
    ``upper=True``, from log-weights ``log_w`` (N, K) that sum to one.

    ``logsumexp_k(log w_k + log Phi(+-z_k))``: no term underflows, where
    ``ndtr`` does beyond about 38 standard deviations, and log-weights below
    ``log(1e-308)`` still count. Each component's smaller tail is torch's
    ``log_ndtr(-|z|)`` (about 1e-16 relative error out to ``z`` = 1000,
    against mpmath), its larger ``log1p(-exp(smaller))``: one ``log_ndtr``
    for both tails, the costly part. Where the mixture's sum exceeds
    ``log(1/2)`` its terms are near 0 and their logsumexp keeps only
    absolute precision (1e-16, against a value of -2.9e-7 five standard
    deviations above a single component); there it is ``log1p(-exp(.))``
    of the other tail's sum, below one half, which keeps full relative
    precision. A point mass steps as in :func:`mixture_cdf`.
    """
    z = torch.from_numpy(_standardise(x, mu, s))
    log_w = torch.from_numpy(log_w)
    small = torch.special.log_ndtr(-z.abs())
    large = torch.log1p(-small.exp())
    below = z < 0
    lower = torch.logsumexp(torch.where(below, small, large).add_(log_w), dim=-1)
    higher = torch.logsumexp(torch.where(below, large, small).add_(log_w), dim=-1)
    want, other = (higher, lower) if upper else (lower, higher)
    out = torch.where(want > _LOG_HALF, torch.log1p(-other.exp()), want)
    return out.clamp_(max=0.0).numpy()  # NaN (a NaN x) stays as it is


def _root_search(
    fun: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    lo: np.ndarray,
    hi: np.ndarray,
    x0: np.ndarray,
    atol: np.ndarray,
) -> np.ndarray:
    """Safeguarded Newton-bisection (``rtsafe``) on many brackets at once.

    ``fun(x, idx)`` returns ``(h, dh)`` for the problems ``idx``; ``h`` must be
    increasing on ``[lo, hi]`` with ``h(lo) <= 0 <= h(hi)``. A Newton step is
    taken when it stays inside the current bracket and at least halves the
    previous step, or when it is below the tolerance (clipped to the bracket:
    at the root it rounds onto the bracket's end), otherwise the bracket is
    bisected; the bracket shrinks every iteration, so the search always
    converges. Stops when the step is below
    ``max(4 eps |x|, atol)`` (``atol`` per problem; ``eps`` is the float64
    resolution, so the root is then as accurate as the numbers allow) or
    ``h == 0``.
    """
    x = np.clip(x0, lo, hi)
    lo, hi = lo.copy(), hi.copy()
    dx_old = hi - lo
    active = np.arange(x.shape[0])
    for _ in range(_MAX_ITER):
        if active.size == 0:
            break
        xa, la, ha, atol_a = x[active], lo[active], hi[active], atol[active]
        h, dh = fun(xa, active)
        la = np.where(h < 0, xa, la)
        ha = np.where(h > 0, xa, ha)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            newton = xa - h / dh
        # A Newton step below the tolerance has converged: near the root it
        # rounds to xa itself, an end of the bracket, which the strict test
        # below refuses (the bisections that followed cost ~40 iterations).
        converged = np.abs(newton - xa) <= np.maximum(4 * _EPS * np.abs(xa), atol_a)
        ok = np.isfinite(newton) & (
            converged
            | (
                (newton > la)
                & (newton < ha)
                & (np.abs(2.0 * h) <= np.abs(dx_old[active] * dh))
            )
        )
        x_new = np.where(ok, np.clip(newton, la, ha), 0.5 * (la + ha))
        step = np.abs(x_new - xa)
        x[active], lo[active], hi[active], dx_old[active] = x_new, la, ha, step
        tol = np.maximum(4 * _EPS * np.abs(x_new), atol_a)
        done = (h == 0) | (step <= tol) | (ha - la <= tol)
        x[active[h == 0]] = xa[h == 0]
        active = active[~done]
    return x


def _refuse_levels(q: np.ndarray) -> None:
    """Raise the error for quantile levels outside [0, 1], showing the first
    few of them (and, for levels up to 100, that they look like percentages).

    >>> try:
    ...     _refuse_levels(np.array([0.5, 50.0]))
    ... except ValueError as error:
    ...     print(str(error).split("; ")[1])
    got 50.0. For percentages divide by 100.
    """
    bad = np.unique(q[~((q >= 0) & (q <= 1))])  # NaN last, once
    shown = ", ".join(repr(float(v)) for v in bad[:3]) + (
        ", ..." if bad.size > 3 else ""
    )
    hint = (
        " For percentages divide by 100."
        if np.all((q >= 0) & (q <= 100)) and q.max() > 1
        else ""
    )
    raise ValueError(f"Quantile levels must lie in [0, 1] (no NaN); got {shown}.{hint}")


def mixture_ppf(q, w: np.ndarray, mu: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Quantile function: the ``x`` with ``F(x) = q``, for ``q`` of shape (..., N).

    The root is bracketed exactly by the smallest and largest component
    quantile (every ``Phi`` term is ``<= q`` at the first and ``>= q`` at the
    second) and found by :func:`_root_search` to ``max(4 eps |x|, XTOL min_k s_k)``.
    Levels above one half solve ``1 - F(x) = 1 - q`` with the survival
    function, so quantiles deep in either tail are as accurate as central
    ones. ``q = 0`` and ``q = 1`` give ``-inf`` and ``inf``.
    """
    q = np.asarray(q, dtype=np.float64)
    if not np.all((q >= 0) & (q <= 1)):
        _refuse_levels(q)
    N = w.shape[0]
    q = np.broadcast_to(q, np.broadcast_shapes(q.shape, (N,)))
    shape = q.shape
    qf = q.reshape(-1)
    rows = np.broadcast_to(np.arange(N), shape).reshape(-1)
    out = np.full(qf.shape, np.nan)
    out[qf == 0] = -np.inf
    out[qf == 1] = np.inf
    inner = np.flatnonzero((qf > 0) & (qf < 1))
    if inner.size:
        out[inner] = _ppf_flat(qf[inner], *_gather((w, mu, s), rows[inner]))
    return out.reshape(shape)


def _ppf_flat(q, w, mu, s) -> np.ndarray:
    upper = q > 0.5
    target = np.where(upper, 1.0 - q, q)
    xk = mu + s * ndtri(q)[:, None]
    lo, hi = xk.min(1), xk.max(1)
    x0 = (w * xk).sum(1)
    s_min = s.min(1)

    def fun(x, idx):
        up, wi, mi, si = upper[idx], w[idx], mu[idx], s[idx]  # gathered once
        tail = mixture_cdf(x, wi, mi, si, upper=up)
        h = np.where(up, target[idx] - tail, tail - target[idx])
        # a point mass's density is inf or NaN: no Newton step, only bisection
        with np.errstate(divide="ignore", invalid="ignore"):
            return h, mixture_pdf(x, wi, mi, si)

    x = _root_search(fun, lo, hi, x0, XTOL * s_min)
    if (s > 0).all():
        return x
    # The search closes in on a point mass's mean from both sides and stops
    # near it (within 4 eps |x|, or at an atom at 0 ever closer to 0, as
    # XTOL * s_min is 0): return the mean itself where it is the smallest x
    # whose F reaches q, F(mean-) < q <= F(mean) (the atom's own level is a
    # flat stretch of F^-1).
    atoms = np.where(s > 0, np.nan, mu)
    idx = np.flatnonzero(~np.isnan(atoms).all(1))
    k = np.nanargmin(np.abs(atoms[idx] - x[idx, None]), axis=1)
    atom = mu[idx, k]
    at, _ = fun(atom, idx)
    below, _ = fun(np.nextafter(atom, -np.inf), idx)
    snap = (at >= 0) & (below < 0)
    x[idx[snap]] = atom[snap]
    return x


def refuse_target_column(a: np.ndarray, n: int, name: str = "y") -> None:
    """Refuse ``a`` of shape exactly (n, 1) against n > 1 rows of univariate
    distributions: broadcasting reads it as n values for every row, (n, n)
    out, where a user who passes a column of targets (a one-column
    DataFrame, ``y.reshape(-1, 1)``) means one value per row, and the mean
    of the (n, n) densities is a wrong number without an error."""
    if n > 1 and a.shape == (n, 1):
        raise ValueError(
            f"{name} has shape ({n}, 1) against {n} rows of a univariate "
            f"distribution, which is ambiguous. For one value per row pass "
            f"shape ({n},), e.g. np.ravel({name}) (a model fitted on 1-D y "
            f"takes 1-D targets); for each of the {n} values in every row "
            f"pass np.broadcast_to({name}, ({n}, {n}))."
        )


def broadcast_to_rows(y: np.ndarray, want: tuple[int, ...]) -> np.ndarray:
    """``y`` broadcast against the rows ``want``, (n,) for univariate
    distributions or (n, d), as a read-only view, optionally with leading
    batch axes: a scalar, or ``grid[:, None]`` (m, 1) for m values shared by
    every row (a column of exactly n values against (n,) is refused, see
    :func:`refuse_target_column`)."""
    if len(want) == 1:
        refuse_target_column(y, want[0])
    try:
        shape = np.broadcast_shapes(y.shape, want)
        # (m,) against one row broadcasts to (m,): m rows, not m values
        if shape[len(shape) - len(want) :] != want:
            raise ValueError
    except ValueError:
        name = "(n,)" if len(want) == 1 else "(n, n_outputs)"
        raise ValueError(
            f"y has shape {y.shape}; expected {name} with n={want[0]} rows"
            + ("" if len(want) == 1 else f" and n_outputs={want[1]}")
            + ", or a shape that broadcasts to it, optionally with leading "
            "batch axes."
        ) from None
    return np.broadcast_to(y, shape)


def select_rows(index, first: np.ndarray) -> tuple[object, np.ndarray]:
    """``index`` as a selection of rows of a batch whose first per-row array
    is ``first``, and ``first[index]``: an integer becomes a one-row slice
    (an out-of-range one an IndexError, as numpy's, at which iteration
    stops, not an empty batch); an index that would reach past the rows
    (a tuple, ``None``) is refused.

    >>> select_rows(-1, np.arange(3))
    (slice(2, 3, None), array([2]))
    """
    n = len(first)
    if isinstance(index, int | np.integer):
        if not -n <= index < n:
            raise IndexError(f"row index {index} is out of range for {n} rows.")
        index = slice(index % n, index % n + 1)
    rows = None if isinstance(index, tuple) else first[index]
    if rows is None or rows.ndim != first.ndim:
        raise IndexError(
            f"index {index!r} must select rows: an integer, a slice, or a 1-D "
            "integer or boolean array."
        )
    return index, rows


@dataclass(frozen=True)
class HighestDensityRegion:
    """Highest-density regions of a batch of univariate distributions.

    The HDR at level ``c`` is ``{y : p(y) >= t}`` with the threshold ``t``
    chosen so that it has probability ``c``; it is the shortest set with that
    probability, and for a multimodal density a union of disjoint intervals.
    :meth:`GaussianMixture.hdr` and ``MDNRegressor.predict_interval(X,
    kind='hdr')`` return it; its parameters are its (read-only) attributes.

    Parameters
    ----------
    intervals : ndarray of shape (n, max_intervals, 2)
        Row ``i`` holds its ``n_intervals[i]`` disjoint intervals
        ``[lower, upper]`` in increasing order; the remaining slots are NaN.
    n_intervals : ndarray of int, shape (n,)
        Number of intervals of each row.
    threshold : ndarray of shape (n,)
        The density level ``t`` of each row: ``inf`` (with numpy's overflow
        warning) where it exceeds the float64 range, 1.8e308, as ``pdf``
        does there, which takes component scales below about 1e-309
        (subnormal). The intervals are still exact: they are found in units
        of a power of two near the scales.
    confidence : float
        The probability ``c`` of every region.

    See Also
    --------
    skmdn.GaussianMixture.hdr : The regions of a batch of mixtures.
    skmdn.MDNRegressor.predict_interval : The regions of a model's predictions.

    Examples
    --------
    >>> import numpy as np
    >>> from skmdn import GaussianMixture
    >>> dist = GaussianMixture(np.log([[0.5, 0.5]]), np.array([[[-5.0], [5.0]]]),
    ...                        scales=np.ones((1, 2, 1)), univariate=True)
    >>> region = dist.hdr(0.9)
    >>> region.n_intervals
    array([2])
    >>> np.round(region.intervals[0], 3)
    array([[-6.645, -3.355],
           [ 3.355,  6.645]])
    >>> region.contains(np.array([0.0])), np.round(region.width(), 3)
    (array([False]), array([6.579]))
    """

    intervals: np.ndarray
    n_intervals: np.ndarray
    threshold: np.ndarray
    confidence: float

    def __len__(self) -> int:
        return self.intervals.shape[0]

    def __getitem__(self, index) -> HighestDensityRegion:
        """Rows ``index`` of the batch, as a new region: the region of the
        same rows of the mixture (``dist.hdr(c)[index]`` is
        ``dist[index].hdr(c)``), selected as :class:`GaussianMixture` selects
        them (an integer keeps a batch of one row; ``region.to_list()[i]``
        gives row ``i``'s intervals)."""
        index, counts = select_rows(index, self.n_intervals)
        # padded to the selected rows' most intervals, as hdr pads a batch
        width = int(counts.max(initial=1))
        return HighestDensityRegion(
            self.intervals[index][:, :width],
            counts,
            self.threshold[index],
            self.confidence,
        )

    def to_list(self) -> list[np.ndarray]:
        """The intervals of each row, without the NaN padding.

        Returns
        -------
        list of ndarray
            One array of shape (n_intervals[i], 2) per row.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture
        >>> means = np.array([[[0.0], [0.0]], [[-5.0], [5.0]]])
        >>> dist = GaussianMixture(np.log([[0.5, 0.5], [0.5, 0.5]]), means,
        ...                        scales=np.ones((2, 2, 1)), univariate=True)
        >>> region = dist.hdr(0.9)
        >>> region.intervals.shape  # row 0's second interval is NaN padding
        (2, 2, 2)
        >>> [intervals.shape for intervals in region.to_list()]
        [(1, 2), (2, 2)]
        """
        return [iv[:m] for iv, m in zip(self.intervals, self.n_intervals, strict=True)]

    def width(self) -> np.ndarray:
        """Total length of each region.

        Returns
        -------
        ndarray of shape (n,)
            The sum of the lengths of each row's intervals.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture
        >>> means = np.array([[[0.0], [0.0]], [[-5.0], [5.0]]])
        >>> dist = GaussianMixture(np.log([[0.5, 0.5], [0.5, 0.5]]), means,
        ...                        scales=np.ones((2, 2, 1)), univariate=True)
        >>> region = dist.hdr(0.9)
        >>> np.round(region.width(), 3)  # 2 * 1.645 for N(0, 1)
        array([3.29 , 6.579])
        """
        return np.nansum(self.intervals[..., 1] - self.intervals[..., 0], axis=1)

    def contains(self, y) -> np.ndarray:
        """Whether each value lies in the region of its row.

        Parameters
        ----------
        y : array-like of shape (..., n)
            One value per row, broadcast against the rows as
            :meth:`GaussianMixture.cdf` broadcasts: e.g. ``grid[:, None]``
            of shape (m, 1) for the same m values in every row. A column of
            shape (n, 1) against n > 1 rows is refused as ambiguous, as
            there.

        Returns
        -------
        ndarray of bool, of the broadcast shape (..., n)
            Whether each value lies in one of its row's intervals.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture
        >>> means = np.array([[[0.0], [0.0]], [[-5.0], [5.0]]])
        >>> dist = GaussianMixture(np.log([[0.5, 0.5], [0.5, 0.5]]), means,
        ...                        scales=np.ones((2, 2, 1)), univariate=True)
        >>> region = dist.hdr(0.9)
        >>> region.contains(np.array([0.0, 0.0]))  # 0 lies between the modes of row 1
        array([ True, False])
        """
        y = np.asarray(y, dtype=np.float64)
        y = broadcast_to_rows(y, (len(self),))[..., None]
        iv = self.intervals
        return ((iv[..., 0] <= y) & (y <= iv[..., 1])).any(axis=-1)


def mixture_hdr(
    confidence: float, w: np.ndarray, mu: np.ndarray, s: np.ndarray, modes: np.ndarray
) -> HighestDensityRegion:
    """Highest-density region of probability ``confidence`` of each row.

    Method, all vectorised over rows:

    1. A grid per row: 17 points ``mu_k + s_k z`` (``z`` from -9 to 9) for
       every component, every local mode in ``modes`` (N, M) and the local
       minimum between each pair of adjacent modes, sorted. Every interval of
       the HDR contains a local mode and every gap a local minimum, so
       ``p - t`` changes sign in exactly the grid cells holding an end point
       (provided ``modes`` holds all local maxima, which mean-shift from every
       component mean and every pairwise product peak finds in practice; from
       the means alone it missed some), and ``m(t)`` below is continuous
       (:class:`_HdrGrid`).
    2. For a threshold ``t`` the end points are the roots of ``p(y) = t`` in
       the grid cells where ``p - t`` changes sign, found by bracketed
       Newton-bisection to ``XTOL`` times the row's smallest component
       scale, and the region's mass ``m(t) = sum F(upper) - F(lower)`` is
       exact (mixture CDF; :meth:`_HdrGrid.crossings`).
    3. ``t`` solves ``m(t) = confidence`` by safeguarded Newton on ``log t``
       (``dm/dt = -t * sum_e 1 / |p'(y_e)|`` over end points), bisecting
       whenever a Newton step would leave the bracket or the last step
       neither halved the bracket nor quartered the error, until
       ``|m(t) - confidence| <= 1e-10`` (or the bracket on ``log t`` is below
       1e-13); end points are then refined once more, so the mass of the
       returned region is ``confidence`` to about 1e-9
       (:func:`_hdr_bracket`, :func:`_hdr_threshold`).
    4. A row left with no interval (a tiny ``confidence`` at a peak flat to
       rounding, where no grid point reaches ``t``) gets the interval of mass
       ``confidence`` around its densest grid point, by :func:`mixture_ppf`
       (:func:`_hdr_intervals`).
    """
    grid = _HdrGrid.build(w, mu, s, modes)
    t = _hdr_threshold(grid, confidence)
    return _hdr_intervals(grid, t, confidence)


@dataclass
class _HdrGrid:
    """Step 1 of :func:`mixture_hdr`: the mixtures ``w``, ``mu``, ``s`` (N, K),
    the sorted grid ``points`` (N, M) of each row, its densities ``density``
    and each row's smallest component scale ``s_min``."""

    w: np.ndarray
    mu: np.ndarray
    s: np.ndarray
    points: np.ndarray
    density: np.ndarray
    s_min: np.ndarray

    @classmethod
    def build(
        cls, w: np.ndarray, mu: np.ndarray, s: np.ndarray, modes: np.ndarray
    ) -> _HdrGrid:
        """The grid of every component, every distinct mode in ``modes`` and
        the antimodes between them."""
        N, K = w.shape  # no -1 in the reshape: it is ambiguous when N = 0
        modes = _distinct(modes, s)
        grid = (mu[:, :, None] + s[:, :, None] * _HDR_GRID).reshape(
            N, K * _HDR_GRID.size
        )
        extra = [modes, _antimodes(modes, w, mu, s)] if modes.shape[1] > 1 else [modes]
        grid = np.sort(np.concatenate([grid, *extra], axis=1), axis=1)
        fg = mixture_pdf(grid.T, w, mu, s).T  # (N, M)
        return cls(w, mu, s, grid, fg, s.min(1))

    def crossings(
        self, t: np.ndarray, rows: np.ndarray, xtol: float = XTOL
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """End points and mass of {p >= t} for the rows ``rows``.

        Returns ``(x, r, up, mass, slope)``: the end points ``x``, each one's
        row ``r`` (an index into ``rows``) and whether the region begins
        there going right (``up``), each row's mass ``m(t)`` and
        ``sum_e 1 / |p'(x_e)|`` over its end points.
        """
        w, mu, s = self.w, self.mu, self.s
        g, f = self.points[rows], self.density[rows]
        above = f >= t[:, None]
        left_edge, right_edge = above[:, 0], above[:, -1]
        r, j = np.nonzero(above[:, :-1] != above[:, 1:])
        up = ~above[r, j]  # entering the region going right
        a, b = g[r, j], g[r, j + 1]
        fa, fb = f[r, j], f[r, j + 1]
        tt = t[r]
        x0 = a + (b - a) * np.clip((tt - fa) / (fb - fa), 0.0, 1.0)
        rr = rows[r]
        sign = np.where(up, 1.0, -1.0)

        def fun(x, idx):
            p, dp = mixture_pdf(x, w[rr[idx]], mu[rr[idx]], s[rr[idx]], derivative=1)
            return sign[idx] * (p - tt[idx]), sign[idx] * dp

        x = _root_search(fun, a, b, x0, xtol * self.s_min[rr])
        F = mixture_cdf(x, w[rr], mu[rr], s[rr])
        mass = np.zeros(rows.size)
        np.add.at(mass, r, np.where(up, -F, F))
        # A region open at a grid end (confidence extremely close to one) is
        # closed at the outermost grid point.
        mass += np.where(
            left_edge, -mixture_cdf(g[:, 0], *_gather((w, mu, s), rows)), 0
        )
        mass += np.where(
            right_edge, mixture_cdf(g[:, -1], *_gather((w, mu, s), rows)), 0
        )
        _, dp = mixture_pdf(x, w[rr], mu[rr], s[rr], derivative=1)
        slope = np.zeros(rows.size)
        np.add.at(slope, r, 1.0 / np.maximum(np.abs(dp), 1e-300))
        return x, r, up, mass, slope


def _hdr_bracket(grid: _HdrGrid, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Bounds ``(log_lo, log_hi)`` of each row's ``log t`` read off the grid.

    With every mode and antimode on the grid, p is monotone in each cell, so
    a cell whose end points both exceed t lies in {p >= t} and a cell whose
    end points are both below t lies outside it. Hence cumulating cell
    masses by decreasing min (max) end-point density gives a lower (upper)
    bound of t.
    """
    w, mu, s, fg = grid.w, grid.mu, grid.s, grid.density
    N = w.shape[0]
    cell = np.diff(mixture_cdf(grid.points.T, w, mu, s).T, axis=1)
    low, high = np.minimum(fg[:, :-1], fg[:, 1:]), np.maximum(fg[:, :-1], fg[:, 1:])
    bounds = []
    for level, side in ((low, "lo"), (high, "hi")):
        order = np.argsort(-level, axis=1)
        cum = np.cumsum(np.take_along_axis(cell, order, axis=1), axis=1)
        k = (cum < confidence).sum(1)  # cells needed (lo) / allowed (hi)
        if side == "lo":
            k = np.minimum(k, cell.shape[1] - 1)
        else:
            k = np.maximum(k - 1, 0)
        bounds.append(np.take_along_axis(level, order, axis=1)[np.arange(N), k])
    tiny = np.finfo(float).tiny
    log_lo = np.log(np.maximum(bounds[0], tiny)) - 1e-12
    log_hi = np.log(np.maximum(bounds[1], tiny)) + 1e-12
    return log_lo, log_hi


def _hdr_threshold(grid: _HdrGrid, confidence: float) -> np.ndarray:
    """Each row's density threshold ``t``, the root of ``m(t) = confidence``,
    by safeguarded Newton on ``u = log t`` from the grid's bracket."""
    log_lo, log_hi = _hdr_bracket(grid, confidence)
    N = grid.w.shape[0]
    u = 0.5 * (log_lo + log_hi)
    width = log_hi - log_lo
    last_err = np.full(N, np.inf)
    grid_lo, grid_hi = log_lo.copy(), log_hi.copy()
    active = np.arange(N)
    for it in range(_MAX_ITER):
        if active.size == 0:
            break
        if it == 3:
            # The coarse masses below were off by up to ~1e-7 * t * scale per
            # end point, which could put an end of the bracket on the wrong
            # side of a root that close: the exact iterations then stalled
            # there, 1.5e-8 from ``confidence``. They restart from the grid's
            # bracket (at the current iterate).
            log_lo[active], log_hi[active] = grid_lo[active], grid_hi[active]
            width[active], last_err[active] = grid_hi[active] - grid_lo[active], np.inf
        t = np.exp(u[active])
        # End points to 1e-7 while searching t (m(t) then has error ~1e-7 *
        # p * scale, far below the Newton steps that matter), XTOL at the end.
        _, _, _, mass, slope = grid.crossings(t, active, 1e-7 if it < 3 else XTOL)
        err = mass - confidence  # decreasing in u
        lo_a = np.where(err > 0, u[active], log_lo[active])
        hi_a = np.where(err < 0, u[active], log_hi[active])
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            newton = u[active] + err / (t * t * slope)
        # Newton unless it stalls: where m(t) is steep (t near the flat top
        # of a small mode) it can bounce inside the bracket without shrinking
        # it, so bisect when the last step neither halved the bracket nor
        # quartered the error.
        ok = np.isfinite(newton) & (newton > lo_a) & (newton < hi_a)
        ok &= (hi_a - lo_a <= 0.5 * width[active]) | (
            np.abs(err) <= 0.25 * last_err[active]
        )
        width[active], last_err[active] = hi_a - lo_a, np.abs(err)
        log_lo[active], log_hi[active] = lo_a, hi_a
        u[active] = np.where(ok, newton, 0.5 * (lo_a + hi_a))
        done = ((np.abs(err) <= 1e-10) & (it >= 3)) | (hi_a - lo_a <= 1e-13)
        u[active[done]] = np.log(t[done])
        active = active[~done]
    return np.exp(u)


def _hdr_intervals(
    grid: _HdrGrid, t: np.ndarray, confidence: float
) -> HighestDensityRegion:
    """The regions {p >= t}: end points refined to ``XTOL``, packed in order
    into a NaN-padded array, and the fallback for rows left empty."""
    fg = grid.density
    N = grid.w.shape[0]
    rows = np.arange(N)
    x, r, up, _, _ = grid.crossings(t, rows)
    above = fg >= t[:, None]
    # Assemble end points in order: an interval opens at an up-crossing (or
    # the left grid end) and closes at the next down-crossing (or right end).
    starts_r = np.concatenate([r[up], rows[above[:, 0]]])
    starts_x = np.concatenate([x[up], grid.points[above[:, 0], 0]])
    ends_r = np.concatenate([r[~up], rows[above[:, -1]]])
    ends_x = np.concatenate([x[~up], grid.points[above[:, -1], -1]])
    o1 = np.lexsort((starts_x, starts_r))
    o2 = np.lexsort((ends_x, ends_r))
    starts_r, starts_x = starts_r[o1], starts_x[o1]
    ends_x = ends_x[o2]
    counts = np.bincount(starts_r, minlength=N)
    width = max(int(counts.max(initial=0)), 1)
    slot = np.arange(starts_r.size) - np.repeat(np.cumsum(counts) - counts, counts)
    intervals = np.full((N, width, 2), np.nan)
    intervals[starts_r, slot, 0] = starts_x
    intervals[starts_r, slot, 1] = ends_x
    empty = np.flatnonzero((counts == 0) & (confidence > 0))
    if empty.size:
        # At a peak flat to rounding (two equal components two scales apart:
        # p is flat to fourth order) a tiny region is narrower than the
        # distance between the found mode and the true peak, and no grid
        # point reaches t. There p differs from its peak value by rounding
        # only: the interval of mass ``confidence`` around the densest grid
        # point is the HDR to float64's resolution.
        params = _gather((grid.w, grid.mu, grid.s), empty)
        peak = grid.points[empty, np.argmax(fg[empty], axis=1)]
        centre = np.clip(mixture_cdf(peak, *params), confidence / 2, 1 - confidence / 2)
        q = np.stack([centre - confidence / 2, centre + confidence / 2])
        intervals[empty, 0] = mixture_ppf(q, *params).T
        counts[empty] = 1
        t[empty] = mixture_pdf(peak, *params)
    return HighestDensityRegion(intervals, counts, t, float(confidence))
