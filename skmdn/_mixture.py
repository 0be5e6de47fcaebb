"""Gaussian-mixture math: the torch log-likelihood used in training and the
numpy-facing predictive distribution returned by ``predict_dist``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import logsumexp

from ._network import MixtureParams
from ._utils import as_numpy_generator

__all__ = ["GaussianMixture", "mixture_log_prob"]

_LOG_2PI = math.log(2.0 * math.pi)


def mixture_log_prob(params: MixtureParams, y: torch.Tensor) -> torch.Tensor:
    """Log-density of ``y`` (n, d) under a batch of Gaussian mixtures.

    Computed as ``logsumexp_k(log pi_k + log N(y | mu_k, Sigma_k))`` with every
    normalising constant, so it is a true log-density. Returns shape (n,).
    """
    diff = y.unsqueeze(-2) - params.means  # (n, K, d)
    d = diff.shape[-1]
    if params.scale_tril is None:
        z = diff / params.scales
        # 0.5 z^2 + log sigma in one kernel: small batches are overhead-bound.
        half_maha = torch.addcmul(params.scales.log(), z, z, value=0.5).sum(-1)
    else:
        z = torch.linalg.solve_triangular(
            params.scale_tril, diff.unsqueeze(-1), upper=False
        ).squeeze(-1)
        log_det = params.scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        half_maha = 0.5 * z.square().sum(-1) + log_det
    return torch.logsumexp(params.log_weights - half_maha, dim=-1) - 0.5 * d * _LOG_2PI


class GaussianMixture:
    """A batch of ``n`` Gaussian mixtures, one per input row (numpy, float64).

    This is the predictive distribution ``p(y | x)`` returned by
    :meth:`skmdn.MDNRegressor.predict_dist`; point predictions, scores and
    samples of the estimator are all computed from it.

    Parameters
    ----------
    log_weights : ndarray of shape (n, K)
        Log mixture weights; each row's weights sum to one.
    means : ndarray of shape (n, K, d)
        Component means.
    scales : ndarray of shape (n, K, d), optional
        Standard deviations of diagonal-covariance components.
    scale_tril : ndarray of shape (n, K, d, d), optional
        Lower Cholesky factors of full covariances. Exactly one of ``scales``
        and ``scale_tril`` is given.
    univariate : bool, default=False
        The model was fitted on 1-D ``y``: ``logpdf`` then takes ``y`` of
        shape (n,), ``mean`` and ``var`` return shape (n,) and ``sample``
        returns shape (n, n_samples).

    Examples
    --------
    >>> import numpy as np
    >>> from skmdn import GaussianMixture
    >>> dist = GaussianMixture(np.log([[0.5, 0.5]]), np.array([[[-1.0], [1.0]]]),
    ...                        scales=np.ones((1, 2, 1)), univariate=True)
    >>> dist.mean()
    array([0.])
    >>> dist.cov()
    array([2.])
    >>> float(np.round(dist.pdf(np.array([0.0]))[0], 4))
    0.242
    """

    def __init__(
        self,
        log_weights: np.ndarray,
        means: np.ndarray,
        scales: np.ndarray | None = None,
        scale_tril: np.ndarray | None = None,
        *,
        univariate: bool = False,
    ) -> None:
        if (scales is None) == (scale_tril is None):
            raise ValueError("Give exactly one of scales and scale_tril.")
        self.log_weights = np.asarray(log_weights, dtype=np.float64)
        self.means = np.asarray(means, dtype=np.float64)
        self.scales = None if scales is None else np.asarray(scales, dtype=np.float64)
        self._scale_tril = (
            None if scale_tril is None else np.asarray(scale_tril, dtype=np.float64)
        )
        self.univariate = bool(univariate)
        n, K, d = self.means.shape
        if self.log_weights.shape != (n, K):
            raise ValueError(f"log_weights must have shape {(n, K)}.")
        if univariate and d != 1:
            raise ValueError("univariate=True needs one output dimension.")

    # ------------------------------------------------------------------ shape
    @property
    def n_components(self) -> int:
        """Number of mixture components ``K``."""
        return self.means.shape[1]

    @property
    def n_outputs(self) -> int:
        """Output dimension ``d``."""
        return self.means.shape[2]

    def __len__(self) -> int:
        return self.means.shape[0]

    def __getitem__(self, index) -> GaussianMixture:
        """Rows ``index`` of the batch, as a new :class:`GaussianMixture`."""
        if isinstance(index, int | np.integer):
            index = slice(index, index + 1 if index != -1 else None)
        return GaussianMixture(
            self.log_weights[index],
            self.means[index],
            None if self.scales is None else self.scales[index],
            None if self._scale_tril is None else self._scale_tril[index],
            univariate=self.univariate,
        )

    def __repr__(self) -> str:
        kind = "diagonal" if self.scales is not None else "full"
        return (
            f"GaussianMixture(n={len(self)}, n_components={self.n_components}, "
            f"n_outputs={self.n_outputs}, covariance={kind!r})"
        )

    # ------------------------------------------------------------- parameters
    @property
    def weights(self) -> np.ndarray:
        """Mixture weights, shape (n, K)."""
        return np.exp(self.log_weights)

    @property
    def scale_tril(self) -> np.ndarray:
        """Lower Cholesky factors of the component covariances, (n, K, d, d)."""
        if self._scale_tril is not None:
            return self._scale_tril
        d = self.n_outputs
        return self.scales[..., :, None] * np.eye(d)

    @property
    def covariances(self) -> np.ndarray:
        """Component covariance matrices, shape (n, K, d, d)."""
        if self.scales is not None:
            return self.scales[..., :, None] ** 2 * np.eye(self.n_outputs)
        L = self._scale_tril
        return L @ np.swapaxes(L, -1, -2)

    # ---------------------------------------------------------------- moments
    def _out(self, array: np.ndarray) -> np.ndarray:
        """Drop the output axis (the last) for univariate models."""
        return array[..., 0] if self.univariate else array

    def mean(self) -> np.ndarray:
        """Mixture mean ``sum_k pi_k mu_k``: shape (n, d), or (n,) if univariate."""
        return self._out(np.einsum("nk,nkd->nd", self.weights, self.means))

    def cov(self) -> np.ndarray:
        """Mixture covariance by the law of total variance.

        ``sum_k pi_k (Sigma_k + mu_k mu_k^T) - m m^T``; shape (n, d, d), or
        the variance with shape (n,) if univariate.
        """
        w = self.weights
        m = np.einsum("nk,nkd->nd", w, self.means)
        centred = self.means - m[:, None, :]
        second = np.einsum("nk,nkij->nij", w, self.covariances)
        second += np.einsum("nk,nki,nkj->nij", w, centred, centred)
        return second[:, 0, 0] if self.univariate else second

    def approx_mode(self) -> np.ndarray:
        """Mean of the most probable component (Bishop's approximate mode)."""
        best = np.argmax(self.log_weights, axis=1)
        return self._out(self.means[np.arange(len(self)), best])

    # -------------------------------------------------------------- densities
    def _check_y(self, y) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if self.univariate:
            y = y[..., None]
        if y.ndim < 2 or y.shape[-2:] != (len(self), self.n_outputs):
            want = "(n,)" if self.univariate else "(n, n_outputs)"
            raise ValueError(
                f"y has shape {y.shape[:-1] if self.univariate else y.shape}; "
                f"expected {want} with n={len(self)} rows"
                + ("" if self.univariate else f" and n_outputs={self.n_outputs}")
                + ", optionally with leading batch axes."
            )
        return y

    def component_logpdf(self, y) -> np.ndarray:
        """``log pi_k + log N(y | mu_k, Sigma_k)`` for every component.

        ``y`` has shape (..., n, d) (or (..., n) if univariate); returns
        (..., n, K).
        """
        y = self._check_y(y)
        diff = y[..., None, :] - self.means
        d = self.n_outputs
        if self.scales is not None:
            z = diff / self.scales
            log_det = np.log(self.scales).sum(-1)
        else:
            L_inv = np.linalg.inv(self._scale_tril)
            z = np.einsum("nkij,...nkj->...nki", L_inv, diff)
            log_det = np.log(np.diagonal(self._scale_tril, axis1=-2, axis2=-1)).sum(-1)
        return (
            self.log_weights - 0.5 * np.square(z).sum(-1) - log_det - 0.5 * d * _LOG_2PI
        )

    def logpdf(self, y) -> np.ndarray:
        """Log-density of ``y``; shape (..., n).

        ``y`` has shape (n, d) (or (n,) if univariate), optionally with leading
        batch axes, e.g. a grid of candidate values of shape (m, n).
        """
        return _logsumexp(self.component_logpdf(y))

    def pdf(self, y) -> np.ndarray:
        """Density of ``y``; see :meth:`logpdf`."""
        return np.exp(self.logpdf(y))

    def responsibilities(self, y) -> np.ndarray:
        """Posterior probability of each component given ``y``: (..., n, K)."""
        c = self.component_logpdf(y)
        return np.exp(c - logsumexp(c, axis=-1, keepdims=True))

    # --------------------------------------------------------------- sampling
    def sample(self, n_samples: int = 1, random_state=None) -> np.ndarray:
        """Draw ``n_samples`` values of ``y`` for every row.

        Returns shape (n, n_samples, d), or (n, n_samples) if univariate.
        Uses a private generator seeded by ``random_state``; numpy's global
        random state is never used.
        """
        rng = as_numpy_generator(random_state)
        n, _, d = self.means.shape
        u = rng.random((n, n_samples))
        z = rng.standard_normal((n, n_samples, d))
        return self._out(self._draws(u, z))

    def _draws(self, u: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Samples (n, s, d) from uniforms ``u`` (n, s) and normals ``z``
        (n, s, d); lets the estimator sample chunk by chunk."""
        n, K = self.means.shape[:2]
        cum = np.cumsum(self.weights, axis=1)
        u = u * cum[:, -1:]
        comp = np.minimum((u[:, :, None] >= cum[:, None, :]).sum(-1), K - 1)
        rows = np.arange(n)[:, None]
        mu = self.means[rows, comp]  # (n, s, d)
        if self.scales is not None:
            draws = mu + self.scales[rows, comp] * z
        else:
            draws = mu + np.einsum("nsij,nsj->nsi", self._scale_tril[rows, comp], z)
        return draws


def _logsumexp(a: np.ndarray) -> np.ndarray:
    """``log(sum(exp(a)))`` over the last axis; about 3x faster than scipy's
    general version (no ``b``, no complex support, no keepdims)."""
    m = np.max(a, axis=-1, keepdims=True)
    m[~np.isfinite(m)] = 0.0
    with np.errstate(divide="ignore"):
        return np.log(np.exp(a - m).sum(-1)) + m[..., 0]
