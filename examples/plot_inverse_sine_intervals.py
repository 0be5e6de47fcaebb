"""Central interval vs highest-density region on Bishop's inverse-sine problem.

``x ~ U(0, 1)``, ``t = x + 0.3 sin(2 pi x) + U(-0.1, 0.1)``; regressing ``x``
on ``t`` gives up to three branches for ``t`` in about (0.3, 0.7). The
figure shows the predicted density ``p(x | t)`` as a heat map, the central
90% interval and the 90% highest-density region (a union of intervals), and
the three point estimates: the mean falls between the branches, the
approximate mode (mean of the heaviest component) jumps, the exact mode
follows the densest branch.

Run from the repository root: ``python examples/plot_inverse_sine_intervals.py``;
writes ``examples/figures/inverse_sine_intervals.png``.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from skmdn import MDNRegressor
from skmdn.metrics import interval_coverage, interval_width


def make_inverse_sine(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, n)
    t = x + 0.3 * np.sin(2.0 * np.pi * x) + rng.uniform(-0.1, 0.1, n)
    return t[:, None], x


def main() -> None:
    X, y = make_inverse_sine(3000, seed=0)
    model = MDNRegressor(
        n_components=3,
        hidden_layer_sizes=(32, 32),
        learning_rate_init=1e-2,
        max_iter=300,
        random_state=0,
    ).fit(X, y)

    X_test, y_test = make_inverse_sine(5000, seed=1)
    dist_test = model.predict_dist(X_test)
    for kind in ("central", "hdr"):
        coverage = interval_coverage(y_test, dist_test, 0.9, kind=kind)
        width = interval_width(dist_test, 0.9, kind=kind)
        print(f"{kind:>7}: coverage {coverage:.3f}  mean width {width:.3f}")

    t = np.linspace(X.min(), X.max(), 400)[:, None]
    dist = model.predict_dist(t)
    grid = np.linspace(-0.15, 1.15, 300)
    density = dist.pdf(np.broadcast_to(grid[:, None], (grid.size, t.shape[0])))
    central = dist.interval(0.9)
    region = dist.hdr(0.9)

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), sharey=True)
    for ax in axes:
        ax.pcolormesh(t[:, 0], grid, np.sqrt(density), cmap="Greys", shading="auto")
        ax.scatter(X[:, 0], y, s=1, c="tab:orange", alpha=0.25, label="training data")
        ax.set_xlabel("t (input)")
    ax = axes[0]
    ax.plot(t[:, 0], central[:, 0], "b-", lw=1.5, label="central 90%")
    ax.plot(t[:, 0], central[:, 1], "b-", lw=1.5)
    for j in range(region.intervals.shape[1]):
        label = "HDR 90%" if j == 0 else None
        ax.plot(t[:, 0], region.intervals[:, j, 0], "r.", ms=2, label=label)
        ax.plot(t[:, 0], region.intervals[:, j, 1], "r.", ms=2)
    ax.set_ylabel("x (target)")
    ax.set_title("90% central interval vs highest-density region")
    ax.legend(loc="upper left", markerscale=4)
    ax = axes[1]
    ax.plot(t[:, 0], dist.mean(), "g-", lw=2, label="mean")
    ax.plot(t[:, 0], dist.mode(), "r.", ms=5, label="mode (exact)")
    ax.plot(t[:, 0], dist.approx_mode(), "c.", ms=1.5, label="approx_mode")
    ax.set_title("point estimates over the density sqrt(p(x | t))")
    ax.legend(loc="upper left", markerscale=4)
    fig.tight_layout()
    out = Path(__file__).parent / "figures" / "inverse_sine_intervals.png"
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
