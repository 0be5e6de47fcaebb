"""The predictive distribution of a model fitted on ``log y`` or ``log1p y``.

With ``MDNRegressor(target_transform='log')`` the network's Gaussian mixture
describes ``z = log y``; :class:`TransformedMixture` turns it back into the
law of ``y`` itself, a mixture of log-normals: positive, right-skewed, with no
probability below 0. With ``'log1p'``, ``z = log(1 + y)`` and ``y > -1``
(counts and amounts with zeros). Both inverse maps ``y = exp(z) - c``
(``c`` = 0 or 1) have ``dy/dz = exp(z)``, so

- densities carry the Jacobian: ``log p(y) = log p_z(z) - sum_d z_d``;
- distribution functions, quantiles and central intervals map through the
  monotone transform exactly;
- moments have closed forms: ``E[exp(z_i)] = exp(mu_i + S_ii / 2)`` and
  ``E[exp(z_i) exp(z_j)] = E[exp(z_i)] E[exp(z_j)] exp(S_ij)`` per component;
- the mode is the mode of an exponentially tilted Gaussian mixture:
  ``N(z; mu, S) exp(-1'z)`` is ``N(z; mu - S 1, S)`` times
  ``exp(-1'mu + 1'S1 / 2)``, so ``p(y)`` peaks at the transform of the mode of
  the mixture with those means and weights.

The highest-density region is not the image of one on the transformed scale
and is not offered (:meth:`TransformedMixture.hdr` says what to use).
"""

from __future__ import annotations

from typing import NoReturn

import numpy as np
from scipy.special import logsumexp

from ._mixture import GaussianMixture

__all__ = [
    "TARGET_TRANSFORMS",
    "TransformedMixture",
    "from_transformed",
    "support_low",
    "to_transformed",
]

# GaussianMixture's parameters, which a TransformedMixture keeps in its base
_BASE_PARAMETERS = frozenset({"means", "scales", "covariances", "scale_tril"})

#: the transforms ``MDNRegressor(target_transform=...)`` accepts, and the
#: offset ``c`` of each inverse ``y = exp(z) - c``
TARGET_TRANSFORMS = {"log": 0.0, "log1p": 1.0}


def support_low(transform: str) -> float:
    """The lower end of the support of ``y``: 0 for ``'log'``, -1 for
    ``'log1p'`` (``y`` must lie above it)."""
    return 0.0 - _offset(transform)  # 0.0, not -0.0, in messages


def _offset(transform: str) -> float:
    if transform not in TARGET_TRANSFORMS:
        raise ValueError(
            f"transform must be one of {sorted(TARGET_TRANSFORMS)}; got {transform!r}."
        )
    return TARGET_TRANSFORMS[transform]


def to_transformed(y: np.ndarray, transform: str) -> np.ndarray:
    """``z = log(y)`` or ``log1p(y)``; ``-inf`` below the support (``y <= 0``,
    or ``y <= -1`` for ``'log1p'``), NaN kept.

    Examples
    --------
    >>> import numpy as np
    >>> to_transformed(np.array([1.0, np.e, 0.0, -2.0]), "log")
    array([  0.,   1., -inf, -inf])
    """
    y = np.asarray(y, dtype=np.float64)
    low = support_low(transform)
    inside = y > low
    safe = np.where(inside, y, 1.0 + low)
    z = np.log(safe) if transform == "log" else np.log1p(safe)
    return np.where(inside, z, np.where(np.isnan(y), np.nan, -np.inf))


def from_transformed(z: np.ndarray, transform: str) -> np.ndarray:
    """The inverse of :func:`to_transformed`: ``exp(z)`` or ``expm1(z)``.

    Examples
    --------
    >>> import numpy as np
    >>> from_transformed(np.log1p(np.array([0.0, 3.0])), "log1p")
    array([0., 3.])
    """
    _offset(transform)
    z = np.asarray(z, dtype=np.float64)
    return np.exp(z) if transform == "log" else np.expm1(z)


class TransformedMixture:
    """A batch of distributions of ``y`` whose logarithm is a Gaussian mixture.

    ``z = log(y + c)`` is a Gaussian mixture (``c`` = 0 for ``'log'``, 1 for
    ``'log1p'``). What :meth:`MDNRegressor.predict_dist` returns for a model fitted with
    ``target_transform``: a mixture of log-normals. It has the methods of
    :class:`GaussianMixture`, in the units of ``y``, but for :meth:`hdr`;
    the Gaussian mixture of ``z`` is :attr:`base`, whose ``means``,
    ``scales`` and ``covariances`` are the parameters on the transformed
    scale.

    Parameters
    ----------
    base : GaussianMixture
        The distribution of the transformed target ``z``.
    transform : {'log', 'log1p'}
        ``z = log(y)`` (support ``y > 0``) or ``z = log(1 + y)`` (``y > -1``).

    See Also
    --------
    GaussianMixture : The mixture of the untransformed target.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import stats
    >>> from skmdn import GaussianMixture, TransformedMixture
    >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
    ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
    >>> dist = TransformedMixture(base, "log")  # a log-normal, median 1
    >>> bool(np.isclose(dist.pdf(np.array([2.0]))[0], stats.lognorm(0.5).pdf(2.0)))
    True
    >>> dist.mean(), np.exp(0.5**2 / 2)  # exp(mu + s^2 / 2)
    (array([1.13314845]), np.float64(1.1331484530668263))
    >>> dist.logpdf(np.array([-1.0]))  # no mass below 0
    array([-inf])
    """

    def __init__(self, base: GaussianMixture, transform: str) -> None:
        if not isinstance(base, GaussianMixture):
            raise TypeError(
                f"base must be a GaussianMixture; got {type(base).__name__}."
            )
        _offset(transform)  # a known transform
        self.base = base
        self.transform = transform

    # ------------------------------------------------------------------ shape
    @property
    def n_components(self) -> int:
        """Number of mixture components ``K``."""
        return self.base.n_components

    @property
    def n_outputs(self) -> int:
        """Output dimension ``d``."""
        return self.base.n_outputs

    @property
    def univariate(self) -> bool:
        """Whether values are given and returned without an output axis."""
        return self.base.univariate

    @property
    def n_threads(self) -> int | None:
        """Worker threads of the base mixture's blocked methods."""
        return self.base.n_threads

    @property
    def weights(self) -> np.ndarray:
        """Mixture weights, shape (n, K), the same on both scales."""
        return self.base.weights

    @property
    def log_weights(self) -> np.ndarray:
        """Logarithms of :attr:`weights`, shape (n, K)."""
        return self.base.log_weights

    def __getattr__(self, name: str):
        """Say where the Gaussian parameters are, rather than that they are not."""
        if name in _BASE_PARAMETERS:
            raise AttributeError(
                f"TransformedMixture has no {name!r}: the mixture's {name} are "
                f"those of the transformed target ({self.transform} y), "
                f"dist.base.{name}."
            )
        raise AttributeError(
            f"{type(self).__name__!r} object has no attribute {name!r}"
        )

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index) -> TransformedMixture:
        """Rows ``index`` of the batch, as a new :class:`TransformedMixture`."""
        return TransformedMixture(self.base[index], self.transform)

    def __array__(self, dtype=None, copy=None):
        """Refuse conversion to an array, as :class:`GaussianMixture` does."""
        raise TypeError(
            f"{self!r} is a batch of distributions, not an array: for numbers "
            "call one of its methods, e.g. dist.mean() (what predict returns), "
            "dist.sample(n) or dist.logpdf(y)."
        )

    def __repr__(self) -> str:
        return f"TransformedMixture({self.base!r}, transform={self.transform!r})"

    def _z(self, y) -> np.ndarray:
        return to_transformed(y, self.transform)

    def _y(self, z) -> np.ndarray:
        return from_transformed(z, self.transform)

    def _with(self, base: GaussianMixture) -> TransformedMixture:
        return TransformedMixture(base, self.transform)

    def _check_z(self, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For ``y`` broadcast as :meth:`logpdf` takes it: ``z`` (..., n, d)
        with 0 outside the support, the base's argument of it, and where
        ``y`` lies inside the support, (..., n) (NaN counts as inside: it
        stays NaN)."""
        z = self._z(self.base._check_y(y))
        inside = ~np.any(z == -np.inf, axis=-1)
        z = np.where(inside[..., None], z, 0.0)
        return z, (z[..., 0] if self.univariate else z), inside

    # -------------------------------------------------------------- densities
    def logpdf(self, y) -> np.ndarray:
        """Log-density of ``y``: ``log p_z(z) - sum_d z_d``.

        Parameters
        ----------
        y : array-like of shape (..., n, d), or (..., n) if univariate
            Values, broadcast against the rows as for
            :meth:`GaussianMixture.logpdf`.

        Returns
        -------
        ndarray of shape (..., n)
            ``log p(y)`` of each row's distribution; ``-inf`` outside the
            support.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> dist.logpdf(np.array([1.0]))  # -log(0.5 sqrt(2 pi)) at the median
        array([-0.22579135])
        """
        z, arg, inside = self._check_z(y)
        out = self.base.logpdf(arg) - z.sum(axis=-1)
        return np.where(inside, out, -np.inf)

    def pdf(self, y) -> np.ndarray:
        """Density of ``y``: ``exp(logpdf(y))``.

        Parameters
        ----------
        y : array-like of shape (..., n, d), or (..., n) if univariate
            Values, broadcast against the rows as for
            :meth:`GaussianMixture.logpdf`.

        Returns
        -------
        ndarray of shape (..., n)
            ``p(y)`` of each row's distribution; 0 outside the support.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> dist.pdf(np.array([[1.0], [0.0]]))  # at the median, and at 0
        array([[0.79788456],
               [0.        ]])
        """
        return np.exp(self.logpdf(y))

    def component_logpdf(self, y) -> np.ndarray:
        """``log pi_k + log p_k(y)`` for every (log-normal) component.

        Parameters
        ----------
        y : array-like of shape (..., n, d), or (..., n) if univariate
            Values, broadcast against the rows as for
            :meth:`GaussianMixture.logpdf`.

        Returns
        -------
        ndarray of shape (..., n, K)
            The weighted log-density of each component at ``y``; ``-inf``
            outside the support.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> dist.component_logpdf(np.array([1.0]))  # one component, weight 1
        array([[-0.22579135]])
        """
        z, arg, inside = self._check_z(y)
        out = self.base.component_logpdf(arg) - z.sum(axis=-1)[..., None]
        return np.where(inside[..., None], out, -np.inf)

    def responsibilities(self, y) -> np.ndarray:
        """Posterior probability of each component given ``y``.

        The Jacobian cancels: these are the base's responsibilities of ``z``.

        Parameters
        ----------
        y : array-like of shape (..., n, d), or (..., n) if univariate
            Values, broadcast against the rows as for
            :meth:`GaussianMixture.logpdf`.

        Returns
        -------
        ndarray of shape (..., n, K)
            ``p(k | x, y)``; NaN where ``y`` is outside the support.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> dist.responsibilities(np.array([2.0]))
        array([[1.]])
        """
        _, arg, inside = self._check_z(y)
        out = self.base.responsibilities(arg)
        return np.where(inside[..., None], out, np.nan)

    # ------------------------------------------------ distribution functions
    def cdf(self, y) -> np.ndarray:
        """Exact (marginal) cumulative distribution function.

        Parameters
        ----------
        y : array-like of shape (..., n) or (..., n, n_outputs)
            Values, broadcast against the rows (and outputs) as for
            :meth:`GaussianMixture.cdf`.

        Returns
        -------
        ndarray of shape (..., n) or (..., n, n_outputs)
            ``P(Y <= y)``, the base's CDF at ``z``; 0 below the support.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> dist.cdf(np.array([1.0]))  # the median of a log-normal is exp(mu)
        array([0.5])
        """
        return self.base.cdf(self._z(y))

    def sf(self, y) -> np.ndarray:
        """Exact (marginal) survival function ``P(Y > y)``.

        Parameters
        ----------
        y : array-like of shape (..., n) or (..., n, n_outputs)
            Values, broadcast against the rows (and outputs) as for
            :meth:`GaussianMixture.cdf`.

        Returns
        -------
        ndarray of shape (..., n) or (..., n, n_outputs)
            ``P(Y > y)``, with the base's precision in the upper tail.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> np.round(dist.sf(np.array([2.0])), 4)  # P(Z > log 2 / 0.5)
        array([0.0828])
        """
        return self.base.sf(self._z(y))

    def logcdf(self, y) -> np.ndarray:
        """Log of the (marginal) cumulative distribution function.

        Parameters
        ----------
        y : array-like of shape (..., n) or (..., n, n_outputs)
            Values, broadcast against the rows (and outputs) as for
            :meth:`GaussianMixture.cdf`.

        Returns
        -------
        ndarray of shape (..., n) or (..., n, n_outputs)
            ``log P(Y <= y)``.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> np.round(dist.logcdf(np.array([0.5])), 4)  # log P(Z <= -1.386)
        array([-2.491])
        """
        return self.base.logcdf(self._z(y))

    def logsf(self, y) -> np.ndarray:
        """Log of the (marginal) survival function.

        Parameters
        ----------
        y : array-like of shape (..., n) or (..., n, n_outputs)
            Values, broadcast against the rows (and outputs) as for
            :meth:`GaussianMixture.cdf`.

        Returns
        -------
        ndarray of shape (..., n) or (..., n, n_outputs)
            ``log P(Y > y)``.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> np.round(dist.logsf(np.array([2.0])), 4)
        array([-2.491])
        """
        return self.base.logsf(self._z(y))

    def ppf(self, q) -> np.ndarray:
        """Quantile function: the transform maps the base's quantiles exactly.

        Parameters
        ----------
        q : float or array-like
            Levels in [0, 1], broadcast against the rows (and outputs) as for
            :meth:`GaussianMixture.ppf`.

        Returns
        -------
        ndarray
            The values ``y`` with ``cdf(y) = q``, shaped as
            :meth:`GaussianMixture.ppf` shapes them.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> np.round(dist.ppf(0.975), 4)  # exp(0.5 * 1.96)
        array([2.6644])
        """
        return self._y(self.base.ppf(q))

    def quantile(self, q) -> np.ndarray:
        """Quantile values at one level or several (see :meth:`ppf`).

        Parameters
        ----------
        q : float or array-like of shape (m,)
            Levels in [0, 1].

        Returns
        -------
        ndarray
            Shape (n,) or (n, d) for a scalar ``q``; (n, m) or (n, m, d)
            otherwise.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> np.round(dist.quantile([0.1, 0.5, 0.9]), 4)  # skewed to the right
        array([[0.5269, 1.    , 1.898 ]])
        """
        return self._y(self.base.quantile(q))

    def interval(self, confidence: float = 0.9) -> np.ndarray:
        """Equal-tailed interval of probability ``confidence``.

        Parameters
        ----------
        confidence : float, default=0.9
            Probability content, in (0, 1).

        Returns
        -------
        ndarray of shape (n, 2) or (n, d, 2)
            ``[lower, upper]``: the quantiles ``(1 - confidence) / 2`` and
            ``(1 + confidence) / 2``.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> np.round(dist.interval(0.9), 4)  # exp(-+0.5 * 1.645)
        array([[0.4394, 2.276 ]])
        """
        return self._y(self.base.interval(confidence))

    def hdr(self, confidence: float = 0.9) -> NoReturn:
        """Not available: raises a ``ValueError`` that says what to use.

        The shortest region of ``y`` is not the image of the shortest region
        of ``z``: the Jacobian tilts the density, and the region's mass is
        measured under the untilted one, which the solver of
        :meth:`GaussianMixture.hdr` does not do.

        Parameters
        ----------
        confidence : float, default=0.9
            Probability content, in (0, 1).

        Raises
        ------
        ValueError
            Always, naming :meth:`interval` and ``base.hdr``.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> dist.interval(0.9).shape  # the central interval instead
        (1, 2)
        """
        raise ValueError(
            f"hdr() is not available for a target_transform={self.transform!r} "
            "distribution: the highest-density region of y is not the image of "
            "the one of the transformed target. Use interval(confidence) (the "
            "equal-tailed interval, exact), or base.hdr(confidence) for the "
            "region of the transformed target z (mapped back with "
            f"{'exp' if self.transform == 'log' else 'expm1'}, it has the same "
            "probability but is not the shortest in y)."
        )

    # ---------------------------------------------------------------- moments
    def _component_means(self) -> tuple[np.ndarray, np.ndarray]:
        """``log E_k[exp(z)]`` (n, K, d) and the components' covariances of
        ``z`` (n, K, d, d)."""
        cov = self.base.covariances
        variances = np.diagonal(cov, axis1=-2, axis2=-1)
        return self.base.means + 0.5 * variances, cov

    def mean(self) -> np.ndarray:
        """Mean of ``y``: ``sum_k pi_k exp(mu_k + diag(S_k) / 2) - c``.

        Returns
        -------
        ndarray of shape (n, d), or (n,) if univariate
            The mean of each row's distribution (summed in log space, so it
            overflows only where the mean itself does).

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> dist.mean()  # exp(0.5^2 / 2)
        array([1.13314845])
        """
        log_m, _ = self._component_means()
        log_mean = logsumexp(self.log_weights[:, :, None] + log_m, axis=1)
        mean = self._y(log_mean)  # exp, or expm1 for log1p's offset of 1
        return mean[:, 0] if self.univariate else mean

    def cov(self) -> np.ndarray:
        """Covariance of ``y`` by the law of total covariance.

        ``sum_k pi_k [m_k m_k' expm1(S_k) + (m_k - m)(m_k - m)']`` with
        ``m_k = E_k[exp(z)]`` and ``m`` their mean: both terms without
        cancellation.

        Returns
        -------
        ndarray of shape (n, d, d), or (n,) (the variance) if univariate
            The covariance matrix of each row's distribution.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> np.round(dist.cov(), 4)  # (exp(s^2) - 1) exp(2 mu + s^2)
        array([0.3647])
        """
        log_m, cov_z = self._component_means()
        with np.errstate(over="ignore"):
            m_k = np.exp(log_m)
            w = self.weights
            m = np.einsum("nk,nkd->nd", w, m_k)
            within = m_k[..., :, None] * m_k[..., None, :] * np.expm1(cov_z)
            centred = m_k - m[:, None, :]
            total = np.einsum("nk,nkij->nij", w, within)
            total += np.einsum("nk,nki,nkj->nij", w, centred, centred)
        return total[:, 0, 0] if self.univariate else total

    def var(self) -> np.ndarray:
        """Variance of each output's marginal.

        Returns
        -------
        ndarray of shape (n, d), or (n,) if univariate
            The diagonal of :meth:`cov`.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> np.round(dist.var(), 4)
        array([0.3647])
        """
        variance = self.cov()
        if self.univariate:
            return variance
        return np.diagonal(variance, axis1=-2, axis2=-1).copy()

    def std(self) -> np.ndarray:
        """Standard deviation of each output's marginal.

        Returns
        -------
        ndarray of shape (n, d), or (n,) if univariate
            The square root of :meth:`var`.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> np.round(dist.std(), 4)
        array([0.6039])
        """
        return np.sqrt(self.var())

    def _tilted(self) -> GaussianMixture:
        """The Gaussian mixture proportional to ``p_z(z) exp(-sum_d z_d)``,
        whose mode is the transform of the mode of ``p(y)``."""
        base = self.base
        shift = base.covariances.sum(axis=-1)  # S_k 1
        log_w = base.log_weights - base.means.sum(axis=-1) + 0.5 * shift.sum(axis=-1)
        log_w = log_w - logsumexp(log_w, axis=1, keepdims=True)
        kind = (
            {"scales": base.scales}
            if base.scales is not None
            else {"scale_tril": base.scale_tril}
        )
        return GaussianMixture._trusted(
            log_w,
            base.means - shift,
            **kind,
            univariate=base.univariate,
            n_threads=base.n_threads,
        )

    def mode(self) -> np.ndarray:
        """Global maximum of the (joint) density of ``y``.

        ``p(y)`` is proportional to the Gaussian mixture with means
        ``mu_k - S_k 1`` and weights ``pi_k exp(-1'mu_k + 1'S_k 1 / 2)``,
        renormalised, taken at ``z``: its mode, by :meth:`GaussianMixture.mode`,
        mapped back. Not the transform of the mode of ``z``.

        Returns
        -------
        ndarray of shape (n, d), or (n,) if univariate
            The most probable value of ``y`` in each row.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> dist.mode()  # exp(mu - s^2), below the median 1
        array([0.77880078])
        """
        return self._y(self._tilted().mode())

    def approx_mode(self) -> np.ndarray:
        """Mode of the most probable component of the tilted mixture.

        Exact for one component (``exp(mu - s^2) - c``); see :meth:`mode`
        for the tilted mixture.

        Returns
        -------
        ndarray of shape (n, d), or (n,) if univariate
            One value per row.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> dist.approx_mode()
        array([0.77880078])
        """
        return self._y(self._tilted().approx_mode())

    def entropy(
        self,
        n_samples: int = 1000,
        random_state=None,
        *,
        return_std_error: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Differential entropy of ``y``, in nats.

        That of ``z`` (Monte Carlo, as :meth:`GaussianMixture.entropy`) plus
        ``E[sum_d z_d]``, exact: ``log |dy / dz| = sum_d z_d``.

        Parameters
        ----------
        n_samples : int, default=1000
            Draws per row for the entropy of ``z``.
        random_state : int, Generator, RandomState or None, default=None
            Seed of a private generator.
        return_std_error : bool, default=False
            Also return the Monte Carlo standard error.

        Returns
        -------
        entropy : ndarray of shape (n,)
            The estimate per row.
        std_error : ndarray of shape (n,)
            Only with ``return_std_error=True``.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> h = dist.entropy(100_000, random_state=0)
        >>> float(np.round(h[0], 2))  # exactly 0.5 + log(0.5 sqrt(2 pi)) = 0.7258
        0.73
        """
        shift = self.base.mean()
        shift = shift if self.univariate else shift.sum(axis=-1)
        out = self.base.entropy(
            n_samples, random_state, return_std_error=return_std_error
        )
        if return_std_error:
            return out[0] + shift, out[1]
        return out + shift

    # ---------------------------------------------------------------- samples
    def sample(
        self,
        n_samples: int = 1,
        random_state=None,
        *,
        temperature: float = 1.0,
        scale_temperature: float = 1.0,
    ) -> np.ndarray:
        """Draw samples of ``y``: the transform of the base's draws.

        Parameters
        ----------
        n_samples : int, default=1
            Draws per row.
        random_state : int, Generator, RandomState or None, default=None
            Seed of a private generator; the same stream as
            :meth:`GaussianMixture.sample`.
        temperature, scale_temperature : float, default=1.0
            Sample from the tempered base (:meth:`tempered`): tempering acts
            on the transformed scale.

        Returns
        -------
        ndarray of shape (n, n_samples) or (n, n_samples, d)
            The first if univariate.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> draws = dist.sample(1000, random_state=0)
        >>> draws.shape, bool(draws.min() > 0)
        ((1, 1000), True)
        """
        return self._y(
            self.base.sample(
                n_samples,
                random_state,
                temperature=temperature,
                scale_temperature=scale_temperature,
            )
        )

    def _draws(self, seed, n_samples: int) -> np.ndarray:
        return self._y(self.base._draws(seed, n_samples))

    # --------------------------------------------------- derived distributions
    def marginal(self, dim) -> TransformedMixture:
        """Marginal distribution of one output dimension, or of several.

        Elementwise transforms commute with taking marginals.

        Parameters
        ----------
        dim : int or sequence of int
            The outputs to keep, as for :meth:`GaussianMixture.marginal`.

        Returns
        -------
        TransformedMixture
            Univariate for an int.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 2)),
        ...                        scales=np.full((1, 1, 2), 0.5))
        >>> dist = TransformedMixture(base, "log")
        >>> dist.marginal(1).cdf(np.array([1.0]))
        array([0.5])
        """
        return self._with(self.base.marginal(dim))

    def condition(self, dims, values) -> TransformedMixture:
        """Conditional distribution of the other outputs given some.

        The base conditioned on the transformed ``values``: the Jacobian of
        the observed outputs cancels.

        Parameters
        ----------
        dims : int or sequence of int
            The observed outputs, as for :meth:`GaussianMixture.condition`.
        values : array-like
            Their values, inside the support.

        Returns
        -------
        TransformedMixture
            ``p(y_B | x, y_A = values)`` for the remaining outputs ``B``.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> L = np.array([[[[0.5, 0.0], [0.4, 0.3]]]])  # correlated log scales
        >>> dist = TransformedMixture(
        ...     GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 2)), scale_tril=L),
        ...     "log")
        >>> given = dist.condition(0, np.array([np.e]))  # y_0 = e, so z_0 = 1
        >>> np.round(given.quantile(0.5), 4)  # exp(0.4 * 1 / 0.5), the median
        array([2.2255])
        """
        z = self._z(values)
        if np.any(z == -np.inf):
            raise ValueError(
                f"condition() needs values > {support_low(self.transform):g} "
                "for target_transform="
                f"{self.transform!r}; got a value at or below it."
            )
        return self._with(self.base.condition(dims, z))

    def tempered(
        self, temperature: float = 1.0, scale_temperature: float = 1.0
    ) -> TransformedMixture:
        """Tempered distribution: the base tempered, then transformed.

        Parameters
        ----------
        temperature : float, default=1.0
            Weights become ``pi_k^(1 / temperature)``, renormalised.
        scale_temperature : float, default=1.0
            Covariances of ``z`` are multiplied by it.

        Returns
        -------
        TransformedMixture
            Tempering acts on the transformed scale
            (:meth:`GaussianMixture.tempered`).

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import GaussianMixture, TransformedMixture
        >>> base = GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)),
        ...                        scales=np.full((1, 1, 1), 0.5), univariate=True)
        >>> dist = TransformedMixture(base, "log")  # log y ~ N(0, 0.5^2)
        >>> dist.tempered(scale_temperature=0.25).interval(0.9).round(4)
        array([[0.6628, 1.5086]])
        """
        return self._with(self.base.tempered(temperature, scale_temperature))
