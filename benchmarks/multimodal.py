"""Multimodal targets with a known Bayes-optimal NLL: excess NLL of MDNRegressor.

1. Inverse sine (Bishop 1994): x ~ U(0, 1), t = f(x) + u with
   f(x) = x + 0.3 sin(2 pi x) and u ~ U(-0.1, 0.1); regress x on t.
   By Bayes, p(x | t) is proportional to p(x) p(t | x) = 1 * 5 * 1{|t - f(x)| < 0.1},
   so p(x | t) is uniform on S(t) = {x in [0, 1] : |t - f(x)| < 0.1}:
   -log p(x | t) = log len(S(t)) for every x in S(t). With G the CDF of f(X),
   X ~ U(0, 1), len(S(t)) = G(t + 0.1) - G(t - 0.1); G is computed exactly up to
   the resolution of a fine grid of x (sorted values of f on 2e6 points). The
   optimal expected NLL is E_t[log len(S(t))]; we evaluate -log p(x | t) on the
   same test points as the model, so the excess NLL is a paired mean.

2. Two-link robot arm, inverse kinematics: link lengths 1 and 0.8, angles
   theta1 ~ U(0, pi), theta2 ~ U(-2.5, 2.5); the observed end effector is
   p = FK(theta) + N(0, 0.05^2 I), FK(theta) = (cos t1 + 0.8 cos(t1 + t2),
   sin t1 + 0.8 sin(t1 + t2)); regress theta on p. Most positions have two
   solutions (elbow up, theta2 > 0, and elbow down, theta2 < 0). The small
   known noise makes the posterior a proper density:
   p(theta | p) = p(theta) N(p; FK(theta), s^2 I) / p(p), with
   p(p) = integral over the angle box, computed by quadrature on a
   fine grid of angles (a uniform grid is spectrally accurate for the
   Gaussian integrand; the grid spacing is below s / 4).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/multimodal.py [--seeds 0,1,2] [--n-train 2000]
    OMP_NUM_THREADS=1 python benchmarks/multimodal.py --floor

``--floor`` prints, for the inverse sine, the approximation floor of a
K-component MDN: the mean over t of min over K-component Gaussian mixtures q of
KL(p(x | t) || q), the least excess NLL even a perfect network trained on
infinite data could reach (see ``inverse_sine_floor``).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.special import logsumexp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skmdn import MDNRegressor


# ------------------------------------------------------------- inverse sine
def _f(x):
    return x + 0.3 * np.sin(2.0 * np.pi * x)


def make_inverse_sine(n: int, rng: np.random.Generator):
    x = rng.uniform(0.0, 1.0, n)
    t = _f(x) + rng.uniform(-0.1, 0.1, n)
    return t[:, None], x


def inverse_sine_optimal_nll(t: np.ndarray, n_grid: int = 2_000_000) -> np.ndarray:
    """-log p(x | t) = log len(S(t)) for each t (the same for every x in S(t))."""
    values = np.sort(_f((np.arange(n_grid) + 0.5) / n_grid))

    def G(s):  # P(f(X) < s), X ~ U(0, 1)
        return np.searchsorted(values, s) / n_grid

    length = G(t + 0.1) - G(t - 0.1)
    return np.log(length)


# ------------------------------------------- approximation floor (--floor)
def _uniform_quantiles(
    t: float, n: int, x_grid: np.ndarray
) -> tuple[np.ndarray, float]:
    """n equally weighted points standing for U(S(t)), and len(S(t)).

    The intervals of S(t) are located on ``x_grid`` (midpoints of equal cells of
    [0, 1]); the points are the midpoint-rule quantiles Q((i + 0.5) / n), i < n,
    of the uniform law on S(t): equally spaced within each interval.
    """
    inside = np.concatenate([[0], np.abs(t - _f(x_grid)) < 0.1, [0]])
    edges = np.flatnonzero(np.diff(inside)) / len(x_grid)
    lo, hi = edges[::2], edges[1::2]  # the one to three intervals of S(t)
    cum = np.concatenate([[0.0], np.cumsum(hi - lo)])
    u = (np.arange(n) + 0.5) / n * cum[-1]
    j = np.searchsorted(cum, u, side="right") - 1
    return lo[j] + u - cum[j], cum[-1]


def _em_step(
    x: np.ndarray, theta: np.ndarray, min_log_scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-entropy -mean(log q(x)) of each row's mixture and its EM update.

    ``x`` (n_rows, n, 1); ``theta`` (n_rows, 3, K) = (means, log scales, log
    weights up to a constant), so that any real theta is a valid mixture. Log
    scales are clipped at ``min_log_scale`` (n_rows, 1, 1), the log spacing of
    the points: a narrower Gaussian could collapse onto a single point.
    """
    mu, log_scale = theta[:, :1], np.maximum(theta[:, 1:2], min_log_scale)
    log_w = theta[:, 2:] - logsumexp(theta[:, 2:], axis=2, keepdims=True)
    log_joint = log_w - 0.5 * ((x - mu) / np.exp(log_scale)) ** 2 - log_scale
    resp = np.exp(log_joint - log_joint.max(axis=2, keepdims=True))
    total = resp.sum(axis=2, keepdims=True)
    log_q = np.log(total) + log_joint.max(axis=2, keepdims=True)
    ce = 0.5 * np.log(2 * np.pi) - log_q.mean(axis=(1, 2))
    resp /= total  # responsibilities, (n_rows, n, K)
    nk = resp.sum(axis=1, keepdims=True) + 1e-300
    mu = (resp * x).sum(axis=1, keepdims=True) / nk
    var = (resp * (x - mu) ** 2).sum(axis=1, keepdims=True) / nk
    log_scale = np.maximum(0.5 * np.log(var + 1e-300), min_log_scale)
    return ce, np.concatenate([mu, log_scale, np.log(nk)], axis=1)


def gmm_cross_entropy(
    points: np.ndarray,
    k: int,
    tol: float = 1e-10,
    max_iter: int = 5000,
    starts: int = 1,
    seed: int = 0,
) -> tuple[np.ndarray, int, int]:
    """Min over K-component Gaussian mixtures q of -mean(log q(points)), per row.

    ``points`` (n_rows, n) holds sorted, equally weighted samples of one density
    per row. EM (which decreases this cross-entropy at every step) starts from
    means at the (j + 0.5) / K quantiles, equal weights and scales of the order
    of the spacing of those means; plain EM needs ~1e4 steps for K=20, so it is
    accelerated by SQUAREM (Varadhan & Roland 2008), falling back to two plain
    EM steps for any row where the extrapolation does not decrease the
    cross-entropy. A row stops once it improves by less than ``tol`` nats per
    iteration. EM stops in local optima (K=5 on a three-branch S(t) of the
    inverse sine: 0.0734 nats from the quantile start, 0.0689 from the best
    of 40 others), so with ``starts`` > 1 it also runs from ``starts - 1``
    starts with the means at random quantiles (``seed``) and keeps each row's
    least cross-entropy. Returns the cross-entropies, the number of
    iterations of the longest start and the number of row-starts not
    converged after ``max_iter`` iterations.
    """
    rng = np.random.default_rng(seed)
    n = points.shape[1]
    best, most, unconverged = np.full(len(points), np.inf), 0, 0
    for start in range(starts):
        q = np.sort(rng.random((len(points), k)), axis=1) * n if start else None
        at = np.broadcast_to(
            ((np.arange(k) + 0.5) * n / k if q is None else q).astype(int),
            (len(points), k),
        )
        ce, iterations, left = _em(
            points, np.take_along_axis(points, at, 1), tol, max_iter
        )
        best = np.minimum(best, ce)
        most, unconverged = max(most, iterations), unconverged + left
    return best, most, unconverged


def _em(
    points: np.ndarray, mu: np.ndarray, tol: float, max_iter: int
) -> tuple[np.ndarray, int, int]:
    """SQUAREM-accelerated EM of :func:`gmm_cross_entropy` from means ``mu``
    (n_rows, K): cross-entropies, iterations, rows not converged."""
    x = points[:, :, None]
    k = mu.shape[1]
    span = np.maximum(points[:, -1:] - points[:, :1], 1e-3)
    theta = np.stack([mu, np.log(span / k) + 0 * mu, 0 * mu], axis=1)
    min_log_scale = np.log(np.diff(points, axis=1).min(axis=1))[:, None, None]
    ce, active, iteration = np.full(len(points), np.inf), np.arange(len(points)), 0
    with np.errstate(all="ignore"):
        while len(active) and iteration < max_iter:
            iteration += 1
            xa, theta0, floor = x[active], theta[active], min_log_scale[active]
            ce_a, theta1 = _em_step(xa, theta0, floor)
            theta2 = _em_step(xa, theta1, floor)[1]
            r, v = theta1 - theta0, theta2 - 2 * theta1 + theta0
            alpha = -np.sqrt((r**2).sum(axis=(1, 2)) / (v**2).sum(axis=(1, 2)))
            alpha = np.minimum(np.nan_to_num(alpha, nan=-1.0), -1.0)[:, None, None]
            jump = theta0 - 2 * alpha * r + alpha**2 * v
            ce_jump, theta3 = _em_step(xa, jump, floor)
            worse = ~(ce_jump <= ce_a)[:, None, None]  # also catches nan
            theta[active] = np.where(worse, theta2, theta3)
            gain, ce[active] = ce[active] - ce_a, ce_a
            active = active[gain >= tol]
    return ce, iteration, len(active)


def inverse_sine_floor(
    ks: list[int], n_t: int = 300, n_points: int = 500, seed: int = 0, starts: int = 30
) -> dict[int, tuple[float, float]]:
    """Approximation floor of a K-component MDN on the inverse-sine problem.

    For ``n_t`` values of t drawn from the problem's own generator, fit the best
    K-component Gaussian mixture q_K(. | t) to p(x | t) = U(S(t)) and return
    {K: (mean, s.e.)} over t of KL(p || q_K) = cross-entropy - log len(S(t)):
    the least excess NLL any K-component MDN can reach, even with a perfect
    network and infinite data (up to EM finding the global optimum: the best
    of ``starts`` starts of :func:`gmm_cross_entropy` per t).
    """
    t, _ = make_inverse_sine(n_t, np.random.default_rng(seed))
    x_grid = (np.arange(200_000) + 0.5) / 200_000
    pairs = [_uniform_quantiles(ti, n_points, x_grid) for ti in t[:, 0]]
    points = np.array([p for p, _ in pairs])
    log_len = np.log([length for _, length in pairs])
    floor = {}
    for k in ks:
        ce, iterations, unconverged = gmm_cross_entropy(points, k, starts=starts)
        kl = ce - log_len
        floor[k] = (kl.mean(), kl.std(ddof=1) / np.sqrt(n_t))
        print(f"K={k}: {iterations} iterations, {unconverged} row-starts unconverged")
    return floor


# ---------------------------------------------------------------- robot arm
L1, L2, SIGMA = 1.0, 0.8, 0.05
T1_RANGE, T2_RANGE = (0.0, np.pi), (-2.5, 2.5)


def _fk(t1, t2):
    return (
        L1 * np.cos(t1) + L2 * np.cos(t1 + t2),
        L1 * np.sin(t1) + L2 * np.sin(t1 + t2),
    )


def make_arm(n: int, rng: np.random.Generator):
    t1 = rng.uniform(*T1_RANGE, n)
    t2 = rng.uniform(*T2_RANGE, n)
    px, py = _fk(t1, t2)
    P = np.column_stack([px, py]) + SIGMA * rng.normal(size=(n, 2))
    return P, np.column_stack([t1, t2])


def _log_prior():
    return -np.log((T1_RANGE[1] - T1_RANGE[0]) * (T2_RANGE[1] - T2_RANGE[0]))


def _log_lik(P, t1, t2):
    px, py = _fk(t1, t2)
    d2 = (P[..., 0] - px) ** 2 + (P[..., 1] - py) ** 2
    return -d2 / (2 * SIGMA**2) - np.log(2 * np.pi * SIGMA**2)


def arm_optimal_nll(P: np.ndarray, theta: np.ndarray, n1=300, n2=480) -> np.ndarray:
    """-log p(theta | p) per point by quadrature of p(p) on an angle grid."""
    h1 = (T1_RANGE[1] - T1_RANGE[0]) / n1
    h2 = (T2_RANGE[1] - T2_RANGE[0]) / n2
    g1 = T1_RANGE[0] + (np.arange(n1) + 0.5) * h1  # midpoint rule
    g2 = T2_RANGE[0] + (np.arange(n2) + 0.5) * h2
    G1, G2 = (a.reshape(-1) for a in np.meshgrid(g1, g2, indexing="ij"))
    gx, gy = _fk(G1, G2)
    log_evidence = np.empty(len(P))
    for start in range(0, len(P), 64):
        Pc = P[start : start + 64]
        d2 = (Pc[:, :1] - gx) ** 2 + (Pc[:, 1:] - gy) ** 2
        ll = -d2 / (2 * SIGMA**2) - np.log(2 * np.pi * SIGMA**2)
        log_evidence[start : start + 64] = (
            logsumexp(ll, axis=1) + np.log(h1 * h2) + _log_prior()
        )
    log_joint = _log_prior() + _log_lik(P, theta[:, 0], theta[:, 1])
    return -(log_joint - log_evidence)


# -------------------------------------------------------------------- main
def run_problem(name, make, optimum, n_train, n_test, seeds, params):
    rows = []
    for seed in seeds:
        rng = np.random.default_rng(10_000 + seed)
        X, y = make(n_train, rng)
        X_test, y_test = make(n_test, rng)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = MDNRegressor(random_state=seed, **params).fit(X, y)
        seconds = time.perf_counter() - start
        nll_model = -model.predict_dist(X_test).logpdf(y_test)
        nll_opt = optimum(X_test[:, 0] if y_test.ndim == 1 else X_test, y_test)
        rows.append(
            (nll_model.mean(), nll_opt.mean(), (nll_model - nll_opt).mean(), seconds)
        )
        print(
            f"{name:12s} seed {seed}: model NLL {rows[-1][0]:7.4f}  optimum "
            f"{rows[-1][1]:7.4f}  excess {rows[-1][2]:7.4f}  ({seconds:.1f} s, "
            f"{model.n_iter_} epochs)",
            flush=True,
        )
    a = np.array(rows)
    se = a.std(axis=0, ddof=1) / np.sqrt(len(a)) if len(a) > 1 else np.nan * a[0]
    return a.mean(axis=0), se


def main(argv=None) -> None:
    import json

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=20000)
    parser.add_argument("--params", default="{}", help="JSON kwargs for the model")
    parser.add_argument("--problems", default="inverse_sine,robot_arm")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="only print the inverse-sine approximation floor for several K",
    )
    parser.add_argument(
        "--starts", type=int, default=30, help="EM starts per t for --floor"
    )
    parser.add_argument(
        "--ks", default="1,2,3,4,5,8,10,15,20", help="K values for --floor"
    )
    args = parser.parse_args(argv)
    if args.floor:
        n_t, ks = 300, [int(k) for k in args.ks.split(",")]
        floor = inverse_sine_floor(ks, n_t=n_t, starts=args.starts)
        print(
            f"\nInverse sine: mean KL(p(x|t) || best K-Gaussian mixture) over {n_t} "
            f"t from the problem's generator, best of {args.starts} EM starts "
            "(mean +- s.e. over t)\n"
        )
        print("| K | floor (nats) |\n|---|---|")
        for k, (mean, se) in floor.items():
            print(f"| {k} | {mean:.4f} +- {se:.4f} |")
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    params = json.loads(args.params)
    problems = {
        "inverse_sine": (
            make_inverse_sine,
            lambda t, x: inverse_sine_optimal_nll(t),
        ),
        "robot_arm": (make_arm, arm_optimal_nll),
    }
    table = []
    for name in args.problems.split(","):
        make, optimum = problems[name]
        n_test = args.n_test if name == "inverse_sine" else min(args.n_test, 4000)
        mean, se = run_problem(name, make, optimum, args.n_train, n_test, seeds, params)
        table.append((name, mean, se))
    print(
        f"\nHeld-out NLL per point, n_train={args.n_train}, {len(seeds)} seeds "
        "(mean +- s.e.); MDNRegressor(**" + json.dumps(params) + ")\n"
    )
    print("| problem | model NLL | Bayes-optimal NLL | excess NLL | fit time (s) |")
    print("|---|---|---|---|---|")
    for name, m, s in table:
        print(
            f"| {name} | {m[0]:.4f} +- {s[0]:.4f} | {m[1]:.4f} +- {s[1]:.4f} | "
            f"{m[2]:.4f} +- {s[2]:.4f} | {m[3]:.1f} |"
        )


if __name__ == "__main__":
    main()
