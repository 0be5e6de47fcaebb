"""Proper scores and calibration metrics for predictive Gaussian mixtures.

Every metric takes the observed targets ``y`` and the predictive distribution
``dist`` (a :class:`~skmdn.GaussianMixture`, e.g. ``model.predict_dist(X)``),
in the argument order of :mod:`sklearn.metrics` (truth first), except
:func:`interval_width`, which needs no targets and takes ``dist`` alone. For a
multi-output model the univariate metrics (CRPS, PIT, intervals) apply to the
marginal of each output dimension.

The mean scores also exist as scorers ``scorer(estimator, X, y)`` for
``GridSearchCV(..., scoring=...)``, ``cross_validate`` and friends, signed as
scikit-learn expects (higher is better): :data:`neg_crps_scorer`,
:data:`neg_nll_scorer`, :func:`make_coverage_scorer` (for
:func:`interval_coverage`) and :func:`make_width_scorer` (for
:func:`interval_width`).

Examples
--------
>>> import numpy as np
>>> from skmdn import GaussianMixture
>>> from skmdn.metrics import crps, nll, pit
>>> dist = GaussianMixture(np.zeros((2, 1)), np.zeros((2, 1, 1)),
...                        scales=np.ones((2, 1, 1)), univariate=True)
>>> y = np.array([0.0, 1.0])
>>> round(crps(y, dist), 4)  # standard normal: (0.2337 + 0.6024) / 2
0.4181
>>> round(nll(y, dist), 4), pit(y, dist).round(4)
(1.1689, array([0.5   , 0.8413]))
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import numpy as np
from scipy.special import ndtr
from sklearn.utils.metadata_routing import MetadataRequest

from ._mixture import GaussianMixture, row_blocks, row_units
from ._transformed import TransformedMixture
from ._utils import (
    check_finite_targets,
    check_sample_weight,
    overflow_safe_weights,
    target_shape,
)

__all__ = [
    "DistributionScorer",
    "crps",
    "crps_values",
    "interval_coverage",
    "interval_width",
    "make_coverage_scorer",
    "make_width_scorer",
    "neg_crps_scorer",
    "neg_nll_scorer",
    "nll",
    "pit",
]

_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
# Values of the (rows, K, K) pair terms of CRPS per block of rows (512 kB).
_CRPS_BLOCK_VALUES = 2**16
_Kind = Literal["central", "hdr"]
_MULTIOUTPUT = ("uniform_average", "raw_values")


def _check(y, dist: GaussianMixture) -> np.ndarray:
    if not isinstance(dist, GaussianMixture | TransformedMixture):
        raise TypeError(
            "dist must be a GaussianMixture or TransformedMixture (e.g. "
            f"model.predict_dist(X)); got {type(dist).__name__}. Note the "
            "order: metric(y, dist)."
        )
    y = np.asarray(y, dtype=np.float64)
    y = target_shape(y, dist.univariate, dist.n_outputs)
    want = (len(dist),) if dist.univariate else (len(dist), dist.n_outputs)
    if y.shape != want:
        raise ValueError(f"y has shape {y.shape}; the distribution needs {want}.")
    check_finite_targets(y)
    return y


def _weights(sample_weight, values: np.ndarray) -> np.ndarray | None:
    """Sample weights checked as ``model.score`` checks them (finite,
    non-negative, not all zero: a NaN weight would make the mean NaN without
    notice), scaled so that their sum cannot overflow; None if not given."""
    if sample_weight is None:
        return None
    return overflow_safe_weights(check_sample_weight(sample_weight, values))


def _average(values: np.ndarray, sample_weight, multioutput) -> float | np.ndarray:
    # checked for univariate models too, where it does not change the result
    if not (isinstance(multioutput, str) and multioutput in _MULTIOUTPUT):
        raise ValueError(
            "multioutput must be 'uniform_average' or 'raw_values'; "
            f"got {multioutput!r}."
        )
    weights = _weights(sample_weight, values)
    per_output = np.average(values, axis=0, weights=weights)
    if values.ndim == 1:
        return float(per_output)
    if multioutput == "raw_values":
        return per_output
    return float(per_output.mean())


def _A(m: np.ndarray, var: np.ndarray) -> np.ndarray:
    """``E|X|`` for ``X ~ N(m, var)``: ``m (2 Phi(m/s) - 1) + 2 s phi(m/s)``,
    and ``|m|`` for ``var = 0`` (a point mass, as ``tempered`` makes)."""
    s = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = m / s
    a = m * (2.0 * ndtr(z) - 1.0) + 2.0 * s * _INV_SQRT_2PI * np.exp(-0.5 * z * z)
    if not (s > 0).all():  # 0 / 0 at m = 0: CRPS was NaN
        a = np.where(s > 0, a, np.abs(m))
    return a


def crps_values(y, dist: GaussianMixture) -> np.ndarray:
    """Closed-form CRPS of each observation (lower is better).

    For ``F = sum_k w_k N(mu_k, s_k^2)`` (Grimit et al., 2006)::

        CRPS(F, y) = sum_k w_k A(y - mu_k, s_k^2)
                     - 1/2 sum_kl w_k w_l A(mu_k - mu_l, s_k^2 + s_l^2),

    with ``A(m, v) = m (2 Phi(m / sqrt v) - 1) + 2 sqrt(v) phi(m / sqrt v)``,
    the mean absolute value of ``N(m, v)`` (``|m|`` for ``v = 0``, so point
    masses, as ``tempered(scale_temperature=0)`` makes, score too). Costs
    ``O(K^2)`` per row.

    Parameters
    ----------
    y : array-like of shape (n,) or (n, n_outputs)
        Observed targets.
    dist : GaussianMixture
        Predictive distributions of the ``n`` rows.

    Returns
    -------
    ndarray of shape (n,) or (n, n_outputs)
        CRPS in target units; per output dimension (of its marginal) for a
        multi-output model.

    References
    ----------
    E. P. Grimit, T. Gneiting, V. J. Berrocal and N. A. Johnson (2006), "The
    continuous ranked probability score for circular variables and its
    application to mesoscale forecast ensemble verification", Q. J. R.
    Meteorol. Soc. 132, 2925-2942.

    Examples
    --------
    >>> import numpy as np
    >>> from skmdn import GaussianMixture
    >>> from skmdn.metrics import crps_values
    >>> dist = GaussianMixture(np.zeros((2, 1)), np.zeros((2, 1, 1)),
    ...                        scales=np.ones((2, 1, 1)), univariate=True)  # N(0, 1)
    >>> np.round(crps_values(np.array([0.0, 1.0]), dist), 4)
    array([0.2337, 0.6024])

    For a normal, ``CRPS = y (2 Phi(y) - 1) + 2 phi(y) - 1 / sqrt(pi)``: 0.2337 at
    ``y = 0`` and 0.6024 at ``y = 1``.
    """
    y = _check(y, dist)
    if isinstance(dist, TransformedMixture):
        raise ValueError(
            "crps needs a GaussianMixture: its closed form does not hold for the "
            f"mixture of log-normals of target_transform={dist.transform!r}. "
            "Score such models with nll (neg_nll_scorer, the model's score) or "
            "the interval metrics."
        )
    w, mu, s = dist._marginal_params()  # flat rows (n * d, K)
    # rows of scales beyond about 1e+-154, whose squares over- or underflow,
    # in units of a power of two near them (CRPS is in the units of y)
    unit = row_units(s.max(1, initial=0.0))[:, None]
    mu, s, flat_y = mu / unit, s / unit, y.reshape(-1, 1) / unit
    out = np.empty(len(w))
    # in blocks of rows: the (rows, K, K) pair terms of a whole batch took
    # 640 MB per 1000 rows at K = 100, and 2-4x as long per pair (measured)
    for rows in row_blocks(len(w), w.shape[1] ** 2, _CRPS_BLOCK_VALUES):
        out[rows] = _crps_rows(flat_y[rows], w[rows], mu[rows], s[rows])
    return (out * unit[:, 0]).reshape(y.shape)


def _crps_rows(y, w, mu, s) -> np.ndarray:
    """:func:`crps_values` of flat rows: ``y`` (N, 1), ``w``, ``mu``, ``s``
    (N, K)."""
    var = s * s
    first = (w * _A(y - mu, var)).sum(1)
    pair = _A(mu[:, :, None] - mu[:, None, :], var[:, :, None] + var[:, None, :])
    second = np.einsum("nk,nkl,nl->n", w, pair, w)
    return first - 0.5 * second


def crps(
    y, dist: GaussianMixture, *, sample_weight=None, multioutput="uniform_average"
) -> float | np.ndarray:
    """Mean continuous ranked probability score (lower is better).

    See :func:`crps_values` for the formula.

    Parameters
    ----------
    y : array-like of shape (n,) or (n, n_outputs)
        Observed targets.
    dist : GaussianMixture
        Predictive distributions of the ``n`` rows.
    sample_weight : array-like of shape (n,), default=None
        Weights of the rows in the mean.
    multioutput : {'uniform_average', 'raw_values'}, default='uniform_average'
        For a multi-output model: the mean over the output dimensions, or
        one mean per output dimension.

    Returns
    -------
    float or ndarray of shape (n_outputs,)
        Mean CRPS in target units.

    Examples
    --------
    >>> import numpy as np
    >>> from skmdn import GaussianMixture
    >>> from skmdn.metrics import crps
    >>> dist = GaussianMixture(np.zeros((2, 1)), np.zeros((2, 1, 1)),
    ...                        scales=np.ones((2, 1, 1)), univariate=True)  # N(0, 1)
    >>> round(crps(np.array([0.0, 1.0]), dist, sample_weight=[1, 3]), 4)
    0.5103

    The weighted mean ``(0.23369 + 3 * 0.60244) / 4`` of :func:`crps_values`.
    """
    return _average(crps_values(y, dist), sample_weight, multioutput)


def nll(y, dist: GaussianMixture, *, sample_weight=None) -> float:
    """Mean negative log-likelihood ``-log p(y | x)`` in nats (joint density).

    Equals ``-model.score(X, y)`` for ``dist = model.predict_dist(X)``.

    Parameters
    ----------
    y : array-like of shape (n,) or (n, n_outputs)
        Observed targets.
    dist : GaussianMixture
        Predictive distributions of the ``n`` rows.
    sample_weight : array-like of shape (n,), default=None
        Weights of the rows in the mean.

    Returns
    -------
    float
        Weighted mean of ``-log p(y | x)``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmdn import GaussianMixture
    >>> from skmdn.metrics import nll
    >>> dist = GaussianMixture(np.zeros((2, 1)), np.zeros((2, 1, 1)),
    ...                        scales=np.ones((2, 1, 1)), univariate=True)  # N(0, 1)
    >>> round(nll(np.array([0.0, 1.0]), dist), 4)  # (0.9189 + 1.4189) / 2
    1.1689

    ``-log phi(0) = log(2 pi) / 2 = 0.9189`` and ``-log phi(1) = 0.9189 + 0.5``.
    """
    y = _check(y, dist)
    return -_average(dist.logpdf(y), sample_weight, "uniform_average")


def pit(y, dist: GaussianMixture) -> np.ndarray:
    """Probability integral transform ``F(y)`` of each observation.

    For a calibrated model these are uniform on [0, 1]; a U shape means
    over-confident, a hump under-confident predictions.

    Parameters
    ----------
    y : array-like of shape (n,) or (n, n_outputs)
        Observed targets.
    dist : GaussianMixture
        Predictive distributions of the ``n`` rows.

    Returns
    -------
    ndarray of shape (n,) or (n, n_outputs)
        ``F(y)``, of each output dimension's marginal for multi-output models.

    Examples
    --------
    >>> import numpy as np
    >>> from skmdn import GaussianMixture
    >>> from skmdn.metrics import pit
    >>> dist = GaussianMixture(np.zeros((3, 1)), np.zeros((3, 1, 1)),
    ...                        scales=np.ones((3, 1, 1)), univariate=True)  # N(0, 1)
    >>> np.round(pit(np.array([-1.96, 0.0, 1.96]), dist), 3)  # norm.cdf
    array([0.025, 0.5  , 0.975])
    """
    return dist.cdf(_check(y, dist))  # at most 1 (GaussianMixture.cdf caps it)


def _marginals(dist: GaussianMixture) -> list[GaussianMixture]:
    return (
        [dist] if dist.univariate else [dist.marginal(j) for j in range(dist.n_outputs)]
    )


def _inside_and_width(y, dist, confidence, kind) -> tuple[np.ndarray, np.ndarray]:
    """Membership of ``y`` (or None) and width, each (n,) or (n, d)."""
    if kind not in ("central", "hdr"):
        raise ValueError(f"kind must be 'central' or 'hdr'; got {kind!r}.")
    inside, width = [], []
    y_cols = None if y is None else (y[:, None] if dist.univariate else y)
    for j, marginal in enumerate(_marginals(dist)):
        if kind == "central":
            lo, hi = marginal.interval(confidence).T
            width.append(hi - lo)
            if y_cols is not None:
                inside.append((lo <= y_cols[:, j]) & (y_cols[:, j] <= hi))
        else:
            region = marginal.hdr(confidence)
            width.append(region.width())
            if y_cols is not None:
                inside.append(region.contains(y_cols[:, j]))
    shape = (lambda a: a[0]) if dist.univariate else (lambda a: np.stack(a, axis=1))
    return (shape(inside) if inside else None), shape(width)


def interval_coverage(
    y,
    dist: GaussianMixture,
    confidence: float = 0.9,
    *,
    kind: _Kind = "central",
    sample_weight=None,
    multioutput="uniform_average",
) -> float | np.ndarray:
    """Share of observations inside their predicted interval.

    A calibrated model covers about ``confidence``.

    Parameters
    ----------
    y : array-like of shape (n,) or (n, n_outputs)
        Observed targets.
    dist : GaussianMixture
        Predictive distributions of the ``n`` rows.
    confidence : float, default=0.9
        Probability content of the intervals, in (0, 1).
    kind : {'central', 'hdr'}, default='central'
        The equal-tailed interval (:meth:`GaussianMixture.interval`) or the
        highest-density region (:meth:`GaussianMixture.hdr`), of each output
        dimension's marginal for multi-output models.
    sample_weight : array-like of shape (n,), default=None
        Weights of the rows in the mean.
    multioutput : {'uniform_average', 'raw_values'}, default='uniform_average'
        For a multi-output model: the mean over the output dimensions, or
        one value per output dimension.

    Returns
    -------
    float or ndarray of shape (n_outputs,)
        Weighted share of the rows whose ``y`` lies in the interval.

    Examples
    --------
    >>> import numpy as np
    >>> from skmdn import GaussianMixture
    >>> from skmdn.metrics import interval_coverage
    >>> dist = GaussianMixture(np.zeros((3, 1)), np.zeros((3, 1, 1)),
    ...                        scales=np.ones((3, 1, 1)), univariate=True)  # N(0, 1)
    >>> y = np.array([0.5, -1.0, 2.5])  # the 90 % interval is +-1.645
    >>> round(interval_coverage(y, dist, 0.9), 3)  # two of the three inside
    0.667
    """
    y = _check(y, dist)
    inside, _ = _inside_and_width(y, dist, confidence, kind)
    return _average(inside.astype(np.float64), sample_weight, multioutput)


def interval_width(
    dist: GaussianMixture,
    confidence: float = 0.9,
    *,
    kind: _Kind = "central",
    sample_weight=None,
    multioutput="uniform_average",
) -> float | np.ndarray:
    """Mean width of the predicted intervals (total length for an HDR).

    Parameters
    ----------
    dist : GaussianMixture
        Predictive distributions of the ``n`` rows.
    confidence : float, default=0.9
        Probability content of the intervals, in (0, 1).
    kind : {'central', 'hdr'}, default='central'
        As in :func:`interval_coverage`.
    sample_weight : array-like of shape (n,), default=None
        Weights of the rows in the mean.
    multioutput : {'uniform_average', 'raw_values'}, default='uniform_average'
        For a multi-output model: the mean over the output dimensions, or
        one value per output dimension.

    Returns
    -------
    float or ndarray of shape (n_outputs,)
        Mean width in target units.

    Examples
    --------
    >>> import numpy as np
    >>> from skmdn import GaussianMixture
    >>> from skmdn.metrics import interval_width
    >>> dist = GaussianMixture(np.zeros((3, 1)), np.zeros((3, 1, 1)),
    ...                        scales=np.ones((3, 1, 1)), univariate=True)  # N(0, 1)
    >>> round(interval_width(dist, 0.9), 3), round(interval_width(dist, 0.95), 3)
    (3.29, 3.92)

    ``2 * norm.ppf(0.95)`` and ``2 * norm.ppf(0.975)``; ``kind='hdr'`` gives the
    same for a unimodal density.
    """
    _, width = _inside_and_width(None, dist, confidence, kind)
    return _average(width, sample_weight, multioutput)


def _distribution_model(estimator, X, purpose: str):
    """The model inside ``estimator`` that has ``predict_dist``, and ``X`` as
    that model sees it: a :class:`~sklearn.pipeline.Pipeline` passes ``X``
    through its other steps (``X=None`` stays None), a fitted search gives
    its ``best_estimator_``, nested too. ``purpose`` starts the error."""
    while not hasattr(estimator, "predict_dist"):
        if hasattr(estimator, "steps"):  # a Pipeline: X through the others
            if X is not None:
                X = estimator[:-1].transform(X)
            estimator = estimator[-1]
        elif hasattr(estimator, "best_estimator_"):  # a fitted search
            estimator = estimator.best_estimator_
        else:
            raise TypeError(
                f"{purpose}, but {type(estimator).__name__} has no predict_dist. "
                "Pass an MDNRegressor, or a Pipeline or a fitted search "
                "(refit=True) that ends in one."
            )
    return estimator, X


class DistributionScorer:
    """A scorer ``scorer(estimator, X, y, sample_weight=None) -> float``.

    Calls ``estimator.predict_dist(X)`` and returns ``sign * metric(y, dist)``
    so that higher is better, as :class:`~sklearn.model_selection.GridSearchCV`
    expects. For a :class:`~sklearn.pipeline.Pipeline` ending in the model,
    ``X`` goes through the other steps first; a fitted search (nested
    cross-validation) is scored by its ``best_estimator_``.

    Parameters
    ----------
    metric : callable
        ``metric(y, dist, sample_weight=...) -> float``.
    sign : {1, -1}
        ``-1`` for losses.
    name : str
        Shown in the repr.

    See Also
    --------
    make_coverage_scorer : A scorer of interval calibration.
    make_width_scorer : A scorer of interval width.
    sklearn.metrics.make_scorer : Scorers of point predictions.

    Examples
    --------
    >>> import numpy as np
    >>> from skmdn import MDNRegressor
    >>> from skmdn.metrics import DistributionScorer, crps
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (100, 1))
    >>> y = np.sin(3 * X[:, 0]) + 0.1 * rng.normal(size=100)
    >>> model = MDNRegressor(n_components=2, max_iter=5, random_state=0).fit(X, y)
    >>> neg_crps = DistributionScorer(crps, -1, "neg_crps")  # as neg_crps_scorer
    >>> neg_crps(model, X, y) == -crps(y, model.predict_dist(X))
    True
    """

    def __init__(self, metric, sign: int, name: str) -> None:
        self.metric, self.sign, self.name = metric, sign, name

    def __call__(self, estimator, X, y, sample_weight=None) -> float:
        """``sign * metric(y, estimator.predict_dist(X))``.

        Parameters
        ----------
        estimator : MDNRegressor or Pipeline
            A fitted model, or a fitted pipeline that ends in one.
        X : array-like of shape (n_samples, n_features)
            Inputs (of the pipeline, if ``estimator`` is one).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the mean.

        Returns
        -------
        float
            The score; higher is better.
        """
        estimator, X = _distribution_model(
            estimator, X, f"{self.name} scores a predictive distribution"
        )
        dist = estimator.predict_dist(X)
        return self.sign * float(self.metric(y, dist, sample_weight=sample_weight))

    def get_metadata_routing(self) -> MetadataRequest:
        """The scorer's request for metadata: ``sample_weight``, always.

        With ``sklearn.set_config(enable_metadata_routing=True)``, a search or
        ``cross_validate`` given ``sample_weight`` passes each test fold's
        weights to the scorer, as to ``MDNRegressor.score`` after
        ``set_score_request(sample_weight=True)`` (without a request they
        would be dropped silently and the fold scored unweighted).

        Returns
        -------
        sklearn.utils.metadata_routing.MetadataRequest
            A request of ``sample_weight`` by the ``score`` method.
        """
        request = MetadataRequest(owner=repr(self))
        request.score.add_request(param="sample_weight", alias=True)
        return request

    def __repr__(self) -> str:
        return f"DistributionScorer({self.name})"


#: ``-crps``: mean CRPS, negated (higher is better).
neg_crps_scorer = DistributionScorer(crps, -1, "neg_crps")
#: ``-nll``: the mean log-likelihood (the estimator's own ``score``).
neg_nll_scorer = DistributionScorer(nll, -1, "neg_nll")


def make_coverage_scorer(
    confidence: float = 0.9, kind: _Kind = "central"
) -> DistributionScorer:
    """Scorer of calibration: ``-|coverage - confidence|`` (best is 0).

    Parameters
    ----------
    confidence : float, default=0.9
        Probability content of the intervals, in (0, 1).
    kind : {'central', 'hdr'}, default='central'
        As in :func:`interval_coverage`.

    Returns
    -------
    DistributionScorer
        ``scorer(estimator, X, y, sample_weight=None)``, from
        :func:`interval_coverage`; for a multi-output model the mean over the
        output dimensions of ``|coverage_j - confidence|``, so that over- and
        under-coverage of different outputs do not cancel.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import cross_val_score
    >>> from skmdn import MDNRegressor
    >>> from skmdn.metrics import make_coverage_scorer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (100, 1))
    >>> y = np.sin(3 * X[:, 0]) + 0.1 * rng.normal(size=100)
    >>> model = MDNRegressor(n_components=2, max_iter=5, random_state=0)
    >>> scorer = make_coverage_scorer(confidence=0.8)
    >>> scores = cross_val_score(model, X, y, cv=3, scoring=scorer)
    >>> scores.shape, bool(np.all(scores <= 0))  # 0: a fold covered exactly 80 %
    ((3,), True)
    """

    # partial of module-level functions, not a closure: picklable, so a fitted
    # GridSearchCV that keeps the scorer can be saved
    error = partial(_coverage_error, confidence=confidence, kind=kind)
    return DistributionScorer(error, -1, f"neg_coverage_error({confidence}, {kind})")


def _coverage_error(y, dist, sample_weight=None, *, confidence, kind) -> float:
    cov = interval_coverage(
        y,
        dist,
        confidence,
        kind=kind,
        sample_weight=sample_weight,
        multioutput="raw_values",
    )
    return float(np.mean(np.abs(cov - confidence)))


def make_width_scorer(
    confidence: float = 0.9, kind: _Kind = "central"
) -> DistributionScorer:
    """Scorer of sharpness: minus the mean interval width (narrower is higher).

    Only meaningful beside a calibration score: a model can be sharp and wrong.

    Parameters
    ----------
    confidence : float, default=0.9
        Probability content of the intervals, in (0, 1).
    kind : {'central', 'hdr'}, default='central'
        As in :func:`interval_coverage`.

    Returns
    -------
    DistributionScorer
        ``scorer(estimator, X, y, sample_weight=None)``, from
        :func:`interval_width` (averaged over the output dimensions); ``y``
        is checked against the distribution but does not enter the width.

    Examples
    --------
    >>> import numpy as np
    >>> from skmdn import MDNRegressor
    >>> from skmdn.metrics import interval_width, make_width_scorer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (100, 1))
    >>> y = np.sin(3 * X[:, 0]) + 0.1 * rng.normal(size=100)
    >>> model = MDNRegressor(n_components=2, max_iter=5, random_state=0).fit(X, y)
    >>> scorer = make_width_scorer(confidence=0.9)
    >>> scorer(model, X, y) == -interval_width(model.predict_dist(X), 0.9)
    True
    """

    width = partial(_checked_width, confidence=confidence, kind=kind)
    return DistributionScorer(width, -1, f"neg_interval_width({confidence}, {kind})")


def _checked_width(y, dist, sample_weight=None, *, confidence, kind) -> float:
    _check(y, dist)
    return interval_width(dist, confidence, kind=kind, sample_weight=sample_weight)
