"""Bishop's inverse-sine problem: the demo that motivates Mixture Density Networks.

The forward map t = x + 0.3 sin(2 pi x) + U(-0.1, 0.1) is easy; its inverse,
x given t, has up to three branches. A least-squares regressor averages them
into a curve that lies where no data are; an MDN learns all three.

Run: ``python examples/inverse_sine.py`` (writes examples/figures/inverse_sine.png).
"""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.neural_network import MLPRegressor

from skmdn import MDNRegressor

FIGURE = Path(__file__).parent / "figures" / "inverse_sine.png"


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs t (n, 1) and targets x (n,) of the inverse problem."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, n)
    t = x + 0.3 * np.sin(2.0 * np.pi * x) + rng.uniform(-0.1, 0.1, n)
    return t[:, None], x


def main() -> None:
    X, y = make_data(2000, seed=0)
    X_test, y_test = make_data(20000, seed=1)

    start = time.perf_counter()
    mdn = MDNRegressor(random_state=0).fit(X, y)
    seconds = time.perf_counter() - start
    single = MDNRegressor(n_components=1, random_state=0).fit(X, y)
    mlp = MLPRegressor(hidden_layer_sizes=(64, 64), max_iter=2000, random_state=0)
    mlp.fit(X, y)

    print(f"MDNRegressor(): {mdn.n_iter_} epochs in {seconds:.1f} s")
    print("held-out mean log-likelihood (nats, higher is better):")
    print(f"  MDN, {mdn.n_components} components : {mdn.score(X_test, y_test):7.3f}")
    print(f"  MDN, 1 component    : {single.score(X_test, y_test):7.3f}")
    for t0 in (0.2, 0.5, 0.8):
        dist = mdn.predict_dist(np.array([[t0]]))
        order = np.argsort(-dist.weights[0])
        parts = ", ".join(
            f"{dist.weights[0, k]:.2f} x N({dist.means[0, k, 0]:.2f}, "
            f"{np.sqrt(dist.covariances[0, k, 0, 0]):.3f}^2)"
            for k in order
            if dist.weights[0, k] > 0.05
        )
        print(f"  p(x | t={t0}) ~ {parts}")

    grid = np.linspace(X.min(), X.max(), 400)[:, None]
    dist = mdn.predict_dist(grid)
    samples = mdn.sample(grid, n_samples=5, random_state=0)

    fig, (ax0, ax1) = plt.subplots(
        2, 1, figsize=(8, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1.2]}
    )
    ax0.scatter(X[:, 0], y, s=4, c="0.75", label="training data")
    ax0.scatter(
        np.repeat(grid[:, 0], 5),
        samples.ravel(),
        s=3,
        c="tab:blue",
        alpha=0.4,
        label="samples from p(x | t)",
    )
    ax0.plot(grid[:, 0], dist.mean(), c="tab:red", lw=2, label="MDN conditional mean")
    ax0.plot(
        grid[:, 0], dist.approx_mode(), ".", c="k", ms=3, label="MDN approximate mode"
    )
    ax0.plot(
        grid[:, 0],
        mlp.predict(grid),
        "--",
        c="tab:green",
        lw=2,
        label="MLPRegressor (least squares)",
    )
    ax0.set_ylabel("x (target)")
    ax0.set_title("Inverse sine: x given t = x + 0.3 sin(2πx) + U(-0.1, 0.1)")
    ax0.legend(loc="upper left", fontsize=8, markerscale=2)
    for k in range(dist.n_components):
        ax1.plot(grid[:, 0], dist.weights[:, k], label=f"π{k + 1}(t)")
    ax1.set_xlabel("t (input)")
    ax1.set_ylabel("mixture weight")
    ax1.set_ylim(0, 1)
    ax1.legend(loc="upper right", fontsize=7, ncol=dist.n_components)
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=110)
    print(f"figure written to {FIGURE}")


if __name__ == "__main__":
    main()
