"""Speed of the exact distribution methods against simple baselines.

Times ``cdf``, ``logcdf``, ``ppf``, ``hdr`` and ``mode`` of
:class:`skmdn.GaussianMixture` on random 1-D mixtures (default 1e5 rows, K=5),
median of several runs, and
the baseline a user would otherwise write, measured in the same run:

- cdf:  scipy.stats.norm.cdf of every component, weighted sum (vectorised);
- logcdf: scipy.stats.norm.logcdf of every component, plus the log-weights,
        scipy.special.logsumexp (vectorised; exact in the lower tail, not
        above the median: see ``GaussianMixture.logcdf``);
- ppf:  scipy.optimize.brentq per row (a Python loop) on a subsample,
        extrapolated to all rows;
- mode: a dense grid of 2001 points per row (vectorised, chunked), subsample,
        extrapolated; accurate only to the grid spacing;
- hdr:  the same dense grid, cells sorted by density until the mass is
        reached (vectorised), subsample, extrapolated; grid accuracy only.

The machine may be shared: compare the ratios, not the absolute times.

Run: ``OMP_NUM_THREADS=1 python benchmarks/distribution.py``; it measures the
``skmdn`` of the checkout it sits in, not an installed copy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy import optimize, special, stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skmdn import GaussianMixture


def random_mixture(n: int, K: int, seed: int = 0) -> GaussianMixture:
    rng = np.random.default_rng(seed)
    log_w = np.log(rng.dirichlet(np.ones(K), n))
    means = 3.0 * rng.normal(size=(n, K, 1))
    scales = np.exp(0.7 * rng.normal(size=(n, K, 1)))
    return GaussianMixture(log_w, means, scales=scales, univariate=True)


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def baseline_cdf(dist, y):
    w, mu, s = dist.weights, dist.means[..., 0], dist.scales[..., 0]
    return (w * stats.norm.cdf(y[:, None], mu, s)).sum(1)


def baseline_logcdf(dist, y):
    log_w, mu, s = dist.log_weights, dist.means[..., 0], dist.scales[..., 0]
    return special.logsumexp(log_w + stats.norm.logcdf(y[:, None], mu, s), axis=1)


def baseline_ppf(dist, q):
    w, mu, s = dist.weights, dist.means[..., 0], dist.scales[..., 0]
    out = np.empty(len(dist))
    for i in range(len(dist)):
        lo, hi = (mu[i] - 40 * s[i]).min(), (mu[i] + 40 * s[i]).max()
        out[i] = optimize.brentq(
            lambda x, i=i: np.sum(w[i] * stats.norm.cdf(x, mu[i], s[i])) - q,
            lo,
            hi,
            xtol=1e-12,
        )
    return out


def _grid(dist, m=2001):
    mu, s = dist.means[..., 0], dist.scales[..., 0]
    lo, hi = (mu - 6 * s).min(1), (mu + 6 * s).max(1)
    grid = lo[:, None] + (hi - lo)[:, None] * np.linspace(0, 1, m)
    return grid, dist.pdf(grid.T).T


def baseline_mode(dist):
    grid, p = _grid(dist)
    return grid[np.arange(len(dist)), p.argmax(1)]


def baseline_hdr(dist, confidence):
    grid, p = _grid(dist)
    mass = p * (grid[:, 1:2] - grid[:, :1])
    order = np.argsort(-p, axis=1)
    cum = np.cumsum(np.take_along_axis(mass, order, axis=1), axis=1)
    k = (cum < confidence).sum(1)
    return np.take_along_axis(p, order, axis=1)[np.arange(len(dist)), k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--components", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--subsample", type=int, default=2000)
    args = parser.parse_args()
    n, runs = args.rows, args.runs
    dist = random_mixture(n, args.components)
    sub = dist[np.arange(min(args.subsample, n))]
    scale = n / len(sub)
    y = dist.mean()

    rows = [
        (
            "cdf",
            lambda: dist.cdf(y),
            lambda: baseline_cdf(dist, y),
            1.0,
            "scipy.stats.norm.cdf, weighted",
        ),
        (
            "logcdf",
            lambda: dist.logcdf(y),
            lambda: baseline_logcdf(dist, y),
            1.0,
            "scipy norm.logcdf, logsumexp",
        ),
        (
            "ppf (q=0.9)",
            lambda: dist.ppf(0.9),
            lambda: baseline_ppf(sub, 0.9),
            scale,
            "brentq per row",
        ),
        ("mode", dist.mode, lambda: baseline_mode(sub), scale, "2001-point grid"),
        (
            "hdr (0.9)",
            lambda: dist.hdr(0.9),
            lambda: baseline_hdr(sub, 0.9),
            scale,
            "2001-point grid",
        ),
    ]
    print(
        f"{n} rows, K={args.components}, 1-D; median of {runs} runs; baselines on "
        f"{len(sub)} rows extrapolated x{scale:g}"
    )
    header = (
        f"| {'method':<12} | {'skmdn s':>8} | {'rows/s':>10} | {'baseline s':>10} "
        f"| {'ratio':>7} | baseline |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name, ours, base, factor, what in rows:
        t_ours = median_time(ours, runs)
        t_base = median_time(base, runs) * factor
        print(
            f"| {name:<12} | {t_ours:8.3f} | {n / t_ours:10.3g} | {t_base:10.3f} "
            f"| {t_base / t_ours:6.2f}x | {what} |"
        )


if __name__ == "__main__":
    main()
