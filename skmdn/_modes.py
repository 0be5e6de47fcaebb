"""Modes of Gaussian mixtures by mean-shift from every component mean.

For ``p(x) = sum_k pi_k N(x | mu_k, Sigma_k)`` with precisions
``L_k = Sigma_k^-1`` and responsibilities ``r_k(x)``, the stationary points
satisfy the fixed-point equation (Carreira-Perpinan, 2000)

    x = (sum_k r_k(x) L_k)^-1 sum_k r_k(x) L_k mu_k,

whose iteration (Gaussian mean-shift) climbs the density from any start.
Every component mean is a start, so each row has ``K`` ascents; the mode is
the end point with the highest density. In two or more dimensions a mixture
can have more modes than components (where elongated components cross), not
reached from any mean, so there the peak of every product of two components,
``(L_k + L_l)^-1 (L_k mu_k + L_l mu_l)``, is a start too (``K (K + 1) / 2``
ascents per row). Mean-shift converges only linearly
near flat or merged modes, so each iteration also forms the Newton step on
``log p`` (exact gradient and Hessian) and keeps whichever of the two
candidates has the higher density: the ascent stays monotone and ends with
quadratic convergence. All ascents of all ``n`` rows run together as one batch that
shrinks to the unconverged ones; there is no Python loop over rows.
"""

from __future__ import annotations

import math

import numpy as np

from ._utils import max_last, sum_last

__all__ = ["XTOL", "mixture_modes"]

_LOG_2PI = math.log(2.0 * math.pi)
_MAX_ITER = 500
#: Step size, relative to the row's smallest component scale, that ends an
#: ascent (or ``4 eps |x|``, the float64 resolution of ``x``, if larger).
XTOL = 1e-10
_EPS = np.finfo(np.float64).eps


def _logsumexp(a: np.ndarray) -> np.ndarray:
    """``log(sum(exp(a)))`` over the last axis; about 3x faster than scipy's
    general version (no ``b``, no complex support, no keepdims). A row of
    ``-inf`` gives ``-inf``. Short rows (few components) are reduced by
    slices, with the same bits (:func:`~skmdn._utils.sum_last`)."""
    m = max_last(a)[..., None]
    m[~np.isfinite(m)] = 0.0
    with np.errstate(divide="ignore"):
        return np.log(sum_last(np.exp(a - m))) + m[..., 0]


def _sum_components(a: np.ndarray) -> np.ndarray:
    """``a.sum(axis=1)`` of an (A, K, d) array, the same bits: numpy adds the
    K slices in order, as :func:`~skmdn._utils.sum_last` does for K < 8."""
    return sum_last(np.moveaxis(a, 1, -1))


def mixture_modes(
    log_weights: np.ndarray,
    means: np.ndarray,
    scales: np.ndarray | None = None,
    scale_tril: np.ndarray | None = None,
    *,
    pair_starts: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima reached by ascents from every component mean (and, with
    ``pair_starts``, from the peak of every product of two components).

    Parameters
    ----------
    log_weights : ndarray of shape (n, K)
    means : ndarray of shape (n, K, d)
    scales : ndarray of shape (n, K, d), optional
        Diagonal standard deviations; or
    scale_tril : ndarray of shape (n, K, d, d), optional
        Lower Cholesky factors of full covariances.
    pair_starts : bool, optional
        Also start from the peak of every product of two components; the
        default is ``d > 1``. In one dimension a local maximum can lie
        outside the basin of every mean, where the flank of one component
        meets the rise of another (weights 0.17 and 0.49 at 0.575 and 7.056,
        scales 1.76 and 6.06, among others), so
        :func:`~skmdn._univariate.mixture_hdr`, which needs every local
        maximum, asks for them there too. Rarely, that maximum is the global
        one (one row in 600,000 random mixtures, see
        :meth:`~skmdn.GaussianMixture.mode`).

    Returns
    -------
    points : ndarray of shape (n, S, d)
        End point of each ascent: ``S = K`` starts (the means) without pair
        starts, else ``S = K (K + 1) / 2`` (the means and the pairwise peaks).
    log_density : ndarray of shape (n, S)
        ``log p`` at each end point; ``argmax`` over the ``S`` ascents gives
        the mode.
    """
    n, K, d = means.shape
    if scales is not None:
        prec = 1.0 / np.square(scales)  # (n, K, d): diagonal precisions
        log_det = np.log(scales).sum(-1)
        s_min = scales.min(axis=(1, 2))
    else:
        inv = np.linalg.inv(scale_tril)
        prec = np.swapaxes(inv, -1, -2) @ inv  # (n, K, d, d)
        diag = np.diagonal(scale_tril, axis1=-2, axis2=-1)
        log_det = np.log(diag).sum(-1)
        s_min = diag.min(axis=(1, 2))
    const = log_weights - log_det - 0.5 * d * _LOG_2PI  # (n, K)
    full = scales is None

    def components(x, rows):
        """Per-component log terms and precision-weighted offsets at x (A, d)."""
        diff = means[rows] - x[:, None, :]
        P = prec[rows]
        ld = np.einsum("akij,akj->aki", P, diff) if full else P * diff
        return const[rows] - 0.5 * sum_last(diff * ld), ld, P

    def log_density(x, rows):
        return _logsumexp(components(x, rows)[0])

    starts = means
    if pair_starts is None:
        pair_starts = d > 1
    if pair_starts and K > 1:
        k, m = np.triu_indices(K, 1)
        if full:
            A = prec[:, k] + prec[:, m]
            b = np.einsum("nkij,nkj->nki", prec[:, k], means[:, k]) + np.einsum(
                "nkij,nkj->nki", prec[:, m], means[:, m]
            )
            pair = np.linalg.solve(A, b[..., None])[..., 0]
        else:
            pair = (prec[:, k] * means[:, k] + prec[:, m] * means[:, m]) / (
                prec[:, k] + prec[:, m]
            )
        starts = np.concatenate([means, pair], axis=1)
    S = starts.shape[1]
    rows_all = np.repeat(np.arange(n), S)
    x = starts.reshape(n * S, d).copy()
    logp = log_density(x, rows_all)
    active = np.arange(n * S)
    diag_idx = np.arange(d)
    for _ in range(_MAX_ITER):
        if active.size == 0:
            break
        rows, xa = rows_all[active], x[active]
        comp, ld, P = components(xa, rows)
        lp = _logsumexp(comp)
        r = np.exp(comp - lp[:, None])  # responsibilities (A, K)
        grad = _sum_components(r[..., None] * ld)
        # Mean-shift: x + (sum r L)^-1 grad; Newton on log p with the Hessian
        # H = sum r (ld ld^T - L) - grad grad^T.
        if full:
            A = np.einsum("ak,akij->aij", r, P)
            x_ms = xa + np.linalg.solve(A, grad[..., None])[..., 0]
        else:
            A = _sum_components(r[..., None] * P)  # diagonal of sum r L, (A, d)
            x_ms = xa + grad / A
        if d == 1:
            H = sum_last(r * ld[..., 0] ** 2) - grad[:, 0] ** 2 - A.reshape(-1)
            neg_def = H < 0
            with np.errstate(divide="ignore", invalid="ignore"):
                x_nt = xa - grad / H[:, None]
        else:
            H = np.einsum("ak,aki,akj->aij", r, ld, ld)
            H -= grad[:, :, None] * grad[:, None, :]
            if full:
                H -= A
            else:
                H[:, diag_idx, diag_idx] -= A
            neg_def = np.linalg.eigvalsh(H).max(-1) < 0
            H[~neg_def] = -np.eye(d)
            x_nt = xa - np.linalg.solve(H, grad[..., None])[..., 0]
        lp_ms = log_density(x_ms, rows)
        lp_nt = np.full(lp_ms.shape, -np.inf)
        lp_nt[neg_def] = log_density(x_nt[neg_def], rows[neg_def])
        # Within a few ulps of a maximum the densities of the candidates tie
        # or differ by rounding only: prefer Newton's step there, and accept
        # a step that loses rounding only. Before, a tie took mean-shift's
        # short linear step and a rounding loss ended the ascent, up to
        # 1.3e-8 scales from the maximum (two unit Gaussians 1.6 apart).
        use_nt = lp_nt >= lp_ms - 4 * _EPS * np.abs(lp_ms)
        x_new = np.where(use_nt[:, None], x_nt, x_ms)
        lp_new = np.where(use_nt, lp_nt, lp_ms)
        improved = lp_new >= lp - 4 * _EPS * np.abs(lp)
        x_new[~improved] = xa[~improved]
        step = max_last(np.abs(x_new - xa))
        tol = np.maximum(4 * _EPS * max_last(np.abs(xa)), XTOL * s_min[rows])
        x[active] = x_new
        logp[active] = np.where(improved, lp_new, lp)
        active = active[improved & (step > tol)]
    return x.reshape(n, S, d), logp.reshape(n, S)
