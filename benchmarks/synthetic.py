"""Synthetic targets with a known conditional density: how honest is the default?

Each problem draws ``x ~ U(-3, 3)`` and ``y | x`` from a density known in
closed form, so the excess NLL of a model over the truth is exact: the
paired mean over the test rows of ``-log q(y | x) + log p(y | x)``, an
estimate of ``E_x KL(p(. | x) || q(. | x))``. The problems are the shapes of
target our users fit:

1. ``heteroscedastic``: ``y = sin(x) + (0.05 + 0.3 |x|) eps``, eps ~ N(0, 1).
2. ``skewed``: log-normal, ``log y ~ N(0.4 x, (0.6 + 0.1 x)^2)`` (prices,
   durations; skewness from 0.95 to 4.7 across x).
3. ``heavy-tailed``: ``y = sin(x) + 0.3 T``, T Student-t with 3 degrees of
   freedom (infinite kurtosis; outliers in an otherwise smooth regression).
4. ``bimodal``: a two-component Gaussian mixture whose weights and means move
   with x: weight ``sigmoid(1.5 x)`` on ``N(1.2 + 0.4 x, 0.25^2)``, the rest
   on ``N(sin(x) - 1.2, 0.2^2)``.
5. ``correlated 2-D``: ``y in R^2`` Gaussian, means ``(sin x, cos x)``,
   standard deviations ``(0.3, 0.2)``, correlation ``0.9 tanh(x)``; fitted
   with the default ``noise_type='diagonal'`` and with ``'full'``.
6. ``counts``: demand-like counts, negative binomial with mean
   ``exp(0.7 + 0.5 x)`` (0.45 to 9) and dispersion 2 (variance
   ``m + m^2 / 2``: demand is overdispersed, rarely Poisson), dequantised:
   ``y = k + U(0, 1)``. A density on the integers themselves has no finite
   NLL optimum (a continuous model gains without bound by growing spikes at
   them), whereas ``k + U`` has the proper density
   ``p(y | x) = P(K = floor(y) | x)``, so its NLL is that of the counts,
   ``-log P(k | x)``. The model's count probabilities ``cdf(k + 1) -
   cdf(k)`` are scored too (a footnote).

For each: the true NLL, the default ``MDNRegressor()``'s test NLL and its
excess, the empirical coverage of its central 90 % interval
(``predict_interval``), over all test rows and in the worst of 10 bins of x
(conditional coverage), and the mean absolute deviation of its PIT
histogram (10 bins, density scale, so 0 is uniform) from uniform, of each
output's marginal for the 2-D problem. The same numbers for a baseline fitted in the
same run, a homoscedastic Gaussian around ``MLPRegressor()``'s prediction
with the residual (co)variance of the training data, and the PIT deviation
of the true conditional distribution itself on the same rows (its sampling
floor: about 0.017 for 20000 rows). Means +- standard errors over seeds;
fit times per fit (2-vCPU VM shared with other jobs)::

    OMP_NUM_THREADS=1 python benchmarks/synthetic.py   # about 1 minute
    OMP_NUM_THREADS=1 python benchmarks/synthetic.py --n-train 20000   # 6 minutes
    OMP_NUM_THREADS=1 python benchmarks/synthetic.py --seeds 0 --problems skewed \\
        --params '{"n_components": 10}'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import stats
from scipy.special import expit, logsumexp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.neural_network import MLPRegressor

from skmdn import MDNRegressor
from skmdn.metrics import pit

__all__ = [
    "PROBLEMS",
    "Problem",
    "chance_bin_error",
    "coverage",
    "gaussian_baseline",
    "main",
    "make_data",
    "pit_deviation",
    "run",
    "summarise",
]

X_RANGE = (-3.0, 3.0)


class Problem(NamedTuple):
    """A conditional law of ``y`` given 1-D ``x`` (arrays of shape (n,)).

    ``sample(x, rng)`` draws ``y``; ``logpdf(x, y)`` and ``cdf(x, y)`` are
    the true log-density and CDF (of each output's marginal for 2-D ``y``).
    """

    sample: Callable[[np.ndarray, np.random.Generator], np.ndarray]
    logpdf: Callable[[np.ndarray, np.ndarray], np.ndarray]
    cdf: Callable[[np.ndarray, np.ndarray], np.ndarray]


# ---------------------------------------------------------- heteroscedastic
def _het_params(x):
    return np.sin(x), 0.05 + 0.3 * np.abs(x)


HETEROSCEDASTIC = Problem(
    sample=lambda x, rng: (
        _het_params(x)[0] + _het_params(x)[1] * rng.normal(size=x.shape)
    ),
    logpdf=lambda x, y: stats.norm.logpdf(y, *_het_params(x)),
    cdf=lambda x, y: stats.norm.cdf(y, *_het_params(x)),
)


# ------------------------------------------------------------------- skewed
def _lognormal(x):
    """scipy's ``lognorm(s=sigma, scale=exp(mu))`` for ``log y ~ N(mu, sigma^2)``."""
    return stats.lognorm(s=0.6 + 0.1 * x, scale=np.exp(0.4 * x))


SKEWED = Problem(
    sample=lambda x, rng: _lognormal(x).rvs(random_state=rng),
    logpdf=lambda x, y: _lognormal(x).logpdf(y),
    cdf=lambda x, y: _lognormal(x).cdf(y),
)


# ------------------------------------------------------------- heavy-tailed
T_DF, T_SCALE = 3.0, 0.3

HEAVY = Problem(
    sample=lambda x, rng: (
        np.sin(x) + T_SCALE * stats.t.rvs(T_DF, size=x.shape, random_state=rng)
    ),
    logpdf=lambda x, y: stats.t.logpdf(y, T_DF, loc=np.sin(x), scale=T_SCALE),
    cdf=lambda x, y: stats.t.cdf(y, T_DF, loc=np.sin(x), scale=T_SCALE),
)


# ------------------------------------------------------------------ bimodal
def _bimodal(x):
    """Weights (n, 2), means (n, 2) and standard deviations (2,)."""
    w1 = expit(1.5 * x)
    weights = np.stack([w1, 1.0 - w1], axis=-1)
    means = np.stack([1.2 + 0.4 * x, np.sin(x) - 1.2], axis=-1)
    return weights, means, np.array([0.25, 0.2])


def _bimodal_sample(x, rng):
    weights, means, sds = _bimodal(x)
    first = rng.random(x.shape) < weights[:, 0]
    k = np.where(first, 0, 1)
    return means[np.arange(len(x)), k] + sds[k] * rng.normal(size=x.shape)


def _bimodal_logpdf(x, y):
    weights, means, sds = _bimodal(x)
    return logsumexp(stats.norm.logpdf(y[:, None], means, sds), b=weights, axis=1)


def _bimodal_cdf(x, y):
    weights, means, sds = _bimodal(x)
    return (weights * stats.norm.cdf(y[:, None], means, sds)).sum(axis=1)


BIMODAL = Problem(_bimodal_sample, _bimodal_logpdf, _bimodal_cdf)


# ----------------------------------------------------------- correlated 2-D
SD_2D = np.array([0.3, 0.2])


def _corr_params(x):
    """Means (n, 2) and covariances (n, 2, 2)."""
    means = np.column_stack([np.sin(x), np.cos(x)])
    rho = 0.9 * np.tanh(x)
    cov = np.empty((len(x), 2, 2))
    cov[:, 0, 0], cov[:, 1, 1] = SD_2D**2
    cov[:, 0, 1] = cov[:, 1, 0] = rho * SD_2D[0] * SD_2D[1]
    return means, cov


def _corr_sample(x, rng):
    means, cov = _corr_params(x)
    return means + np.einsum(
        "nij,nj->ni", np.linalg.cholesky(cov), rng.normal(size=means.shape)
    )


def _corr_logpdf(x, y):
    means, cov = _corr_params(x)
    r = y - means
    sol = np.linalg.solve(cov, r[..., None])[..., 0]
    return (
        -np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(cov)[1] - 0.5 * (r * sol).sum(-1)
    )


CORRELATED = Problem(
    sample=_corr_sample,
    logpdf=_corr_logpdf,
    cdf=lambda x, y: stats.norm.cdf(y, _corr_params(x)[0], SD_2D),
)


# ------------------------------------------------------------------- counts
NB_DISPERSION = 2.0


def _negbin(x):
    """scipy's ``nbinom(n=r, p=r / (r + m))``: mean m, variance m + m^2 / r."""
    m = np.exp(0.7 + 0.5 * x)
    return stats.nbinom(NB_DISPERSION, NB_DISPERSION / (NB_DISPERSION + m))


def _counts_sample(x, rng):
    return _negbin(x).rvs(random_state=rng) + rng.random(x.shape)


def _counts_logpdf(x, y):
    """``log P(K = floor(y))``: the density of ``K + U(0, 1)`` (0 below 0)."""
    return _negbin(x).logpmf(np.floor(y))


def _counts_cdf(x, y):
    k = np.floor(y)
    law = _negbin(x)
    return law.cdf(k - 1) + (y - k) * law.pmf(k)


COUNTS = Problem(_counts_sample, _counts_logpdf, _counts_cdf)

PROBLEMS: dict[str, Problem] = {
    "heteroscedastic": HETEROSCEDASTIC,
    "skewed": SKEWED,
    "heavy-tailed": HEAVY,
    "bimodal": BIMODAL,
    "correlated 2-D": CORRELATED,
    "counts": COUNTS,
}
# The model rows of each problem: MDNRegressor parameters over --params.
VARIANTS: dict[str, list[dict]] = {"correlated 2-D": [{}, {"noise_type": "full"}]}


def make_data(
    problem: Problem, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``X`` of shape (n, 1) and ``y`` drawn from the problem's law."""
    x = rng.uniform(*X_RANGE, n)
    return x[:, None], problem.sample(x, rng)


def pit_deviation(u: np.ndarray, bins: int = 10) -> float:
    """Mean absolute deviation of the PIT histogram's density from 1.

    ``u`` of shape (n,) or (n, d): for several columns, the mean of the
    columns' deviations. 0 for exactly uniform counts; a calibrated model
    on n rows scores about ``0.8 sqrt((bins - 1) / n)`` by chance.
    """
    u = np.asarray(u).reshape(len(u), -1)
    out = []
    for column in u.T:
        counts = np.histogram(np.clip(column, 0.0, 1.0), bins=bins, range=(0, 1))[0]
        out.append(np.mean(np.abs(counts * bins / len(column) - 1.0)))
    return float(np.mean(out))


def coverage(
    x: np.ndarray, y: np.ndarray, interval: np.ndarray, bins: int = 10
) -> tuple[float, float]:
    """Share of rows (and outputs) with ``y`` inside ``interval`` (..., 2),
    and the largest ``|share - 0.9|`` in ``bins`` equal-width bins of ``x``
    (over ``X_RANGE``): conditional coverage, which a homoscedastic interval
    misses while it covers 0.9 on average (too wide at some x, too narrow at
    others). A calibrated model's worst bin is off by chance: by about
    0.014 for 20000 rows (see :func:`chance_bin_error`).
    """
    inside = (interval[..., 0] <= y) & (y <= interval[..., 1])
    inside = inside.reshape(len(x), -1).mean(axis=1)
    edges = np.linspace(*X_RANGE, bins + 1)[1:-1]
    which = np.searchsorted(edges, x)
    per_bin = np.array([inside[which == b].mean() for b in range(bins)])
    return float(inside.mean()), float(np.abs(per_bin - 0.9).max())


def chance_bin_error(n: int, bins: int = 10, draws: int = 2000) -> float:
    """Mean of the worst-bin coverage error of :func:`coverage` for exactly
    calibrated 90 % intervals on ``n`` rows of 1-D ``y`` (``n / bins`` rows a
    bin, each inside with probability 0.9), by simulation."""
    rng = np.random.default_rng(0)
    per_bin = rng.binomial(n // bins, 0.9, size=(draws, bins)) / (n // bins)
    return float(np.abs(per_bin - 0.9).max(axis=1).mean())


def gaussian_baseline(X, y, X_test, y_test, seed: int) -> dict:
    """A homoscedastic Gaussian around ``MLPRegressor()``'s prediction.

    The residual variance (covariance for 2-D ``y``) is estimated on the
    training rows: the mean of the residuals' squares (products), the
    maximum-likelihood estimate for a Gaussian centred at the prediction.
    Returns its test NLL per row (n_test,), the coverage of ``prediction +-
    z_0.95 sd``, its PIT values and the fit time.
    """
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter
        mlp = MLPRegressor(random_state=seed).fit(X, y)
    residual = (y - mlp.predict(X)).reshape(len(y), -1)
    cov = residual.T @ residual / len(y)  # about N(prediction, cov): no centring
    seconds = time.perf_counter() - start
    pred = mlp.predict(X_test).reshape(len(y_test), -1)
    r = y_test.reshape(len(y_test), -1) - pred
    nll = -stats.multivariate_normal(np.zeros(len(cov)), cov).logpdf(r)
    sd = np.sqrt(np.diag(cov))
    z = stats.norm.ppf(0.95)
    interval = np.stack([pred - z * sd, pred + z * sd], axis=-1)
    return {
        "nll": np.atleast_1d(nll),
        "coverage": coverage(X_test[:, 0], y_test.reshape(pred.shape), interval),
        "pit": stats.norm.cdf(r / sd),
        "seconds": seconds,
    }


def run(name: str, seed: int, n_train: int, n_test: int, params: dict) -> list[dict]:
    """One seed of one problem: a dict of results per model variant."""
    problem = PROBLEMS[name]
    rng = np.random.default_rng([seed, list(PROBLEMS).index(name)])
    X, y = make_data(problem, n_train, rng)
    X_test, y_test = make_data(problem, n_test, rng)
    x_test = X_test[:, 0]
    true_nll = -problem.logpdf(x_test, y_test)
    base = gaussian_baseline(X, y, X_test, y_test, seed)
    rows = []
    for extra in VARIANTS.get(name, [{}]):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter
            model = MDNRegressor(random_state=seed, **{**params, **extra}).fit(X, y)
        seconds = time.perf_counter() - start
        dist = model.predict_dist(X_test)
        nll = -dist.logpdf(y_test)
        cover, bin_error = coverage(x_test, y_test, model.predict_interval(X_test, 0.9))
        row = {
            "problem": name,
            "variant": model.noise_type,
            "seed": seed,
            "true_nll": true_nll.mean(),
            "nll": nll.mean(),
            "excess": (nll - true_nll).mean(),
            "coverage": cover,
            "bin_error": bin_error,
            "pit": pit_deviation(pit(y_test, dist)),
            "seconds": seconds,
            "epochs": model.n_iter_,
            "base_nll": base["nll"].mean(),
            "base_excess": (base["nll"] - true_nll).mean(),
            "base_coverage": base["coverage"][0],
            "base_bin_error": base["coverage"][1],
            "base_pit": pit_deviation(base["pit"]),
            "base_seconds": base["seconds"],
            "true_pit": pit_deviation(problem.cdf(x_test, y_test)),
        }
        if name in ("skewed", "counts"):  # the truth has no mass below 0
            row["mass_below_0"] = float(np.mean(dist.cdf(np.zeros(n_test))))
        if name == "counts":  # the counts' own NLL, -log P(k) from the model
            k = np.floor(y_test)
            p_k = dist.cdf(k + 1) - dist.cdf(k)
            row["count_excess"] = float(np.mean(-np.log(p_k) - true_nll))
        rows.append(row)
    return rows


def _mean_se(values) -> str:
    a = np.asarray(values, dtype=float)
    se = a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 else float("nan")
    return f"{a.mean():.3f} +- {se:.3f}"


def summarise(rows: list[dict]) -> str:
    """The markdown table (means +- s.e. over seeds) and its footnotes."""
    lines = [
        "| problem | noise_type | true NLL | model NLL | excess | MLP+Gaussian excess "
        "| 90 % coverage (model / MLP) | worst x-bin coverage error (model / MLP) "
        "| PIT deviation (model / MLP / truth) | fit s (model / MLP) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["problem"], row["variant"]), []).append(row)
    for (name, variant), g in groups.items():

        def col(key, g=g):
            return [r[key] for r in g]

        def m(key, g=g):
            return np.mean([r[key] for r in g])

        lines.append(
            f"| {name} | {variant} | {m('true_nll'):.3f} | {_mean_se(col('nll'))} "
            f"| {_mean_se(col('excess'))} | {_mean_se(col('base_excess'))} "
            f"| {m('coverage'):.3f} / {m('base_coverage'):.3f} "
            f"| {m('bin_error'):.3f} / {m('base_bin_error'):.3f} "
            f"| {m('pit'):.3f} / {m('base_pit'):.3f} / {m('true_pit'):.3f} "
            f"| {m('seconds'):.1f} / {m('base_seconds'):.2f} |"
        )
        if "mass_below_0" in g[0]:
            notes.append(
                f"{name}: the model puts {100 * m('mass_below_0'):.2f} % of its "
                "probability below 0, where the truth has none"
            )
        if "count_excess" in g[0]:
            notes.append(
                f"{name}: excess of the model's count probabilities "
                f"-log(cdf(k + 1) - cdf(k)) over -log P(k): "
                f"{_mean_se(col('count_excess'))} (the density's: "
                f"{_mean_se(col('excess'))})"
            )
    return "\n".join([*lines, "", *notes])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=20000)
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--params", default="{}", help="JSON kwargs for the model")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    params = json.loads(args.params)
    start = time.perf_counter()
    rows = []
    for name in args.problems.split(","):
        for seed in seeds:
            for row in run(name, seed, args.n_train, args.n_test, params):
                rows.append(row)
                print(
                    f"{name} ({row['variant']}) seed {seed}: excess "
                    f"{row['excess']:.4f}, baseline {row['base_excess']:.4f}, "
                    f"{row['seconds']:.1f} s, {row['epochs']} epochs",
                    flush=True,
                )
    print(
        f"\nTest NLL per row (nats), n_train={args.n_train}, n_test={args.n_test}, "
        f"{len(seeds)} seeds (mean +- s.e.); MDNRegressor(**{json.dumps(params)}); "
        "excess = paired mean of model NLL - true NLL; worst x-bin coverage "
        "error: max over 10 equal bins of x of |coverage - 0.9| (chance level "
        f"for calibrated intervals: {chance_bin_error(args.n_test):.3f}); PIT "
        "deviation: mean |histogram density - 1| over 10 bins\n"
    )
    print(summarise(rows))
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
