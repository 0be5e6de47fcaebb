"""Inverse kinematics of a two-link robot arm: two modes (elbow up / down).

The forward map from joint angles (theta1, theta2) to the hand position (x, y)
is easy; the inverse, angles from a position, has two solutions for every
reachable point. A least-squares regressor averages them into an angle pair
that misses the target; a Mixture Density Network learns both branches.

Run: ``python examples/robot_arm.py`` (writes examples/figures/robot_arm.png).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from skmdn import MDNRegressor

L1, L2 = 0.8, 0.6  # link lengths


def forward(theta):
    """Hand position of the arm for angles theta (n, 2)."""
    t1, t2 = theta[:, 0], theta[:, 1]
    return np.column_stack(
        [
            L1 * np.cos(t1) + L2 * np.cos(t1 + t2),
            L1 * np.sin(t1) + L2 * np.sin(t1 + t2),
        ]
    )


def main(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    # Angles: shoulder in (-pi/2, pi/2), elbow bent either way, |theta2| in
    # (0.3, 2.8); the sign of theta2 (elbow up or down) is the hidden mode.
    theta = np.column_stack(
        [
            rng.uniform(-np.pi / 2, np.pi / 2, n),
            rng.choice([-1.0, 1.0], n) * rng.uniform(0.3, 2.8, n),
        ]
    )
    pos = forward(theta)
    model = MDNRegressor(
        n_components=4,
        hidden_layer_sizes=(64, 64),
        max_iter=1000,
        learning_rate_init=3e-3,
        early_stopping=True,
        n_iter_no_change=20,
        random_state=seed,
    ).fit(pos, theta)

    # Targets on a circle arc; ask for the most probable angle pair and the
    # other mode, and measure how far the hand lands from the target.
    s = np.linspace(-0.9, 0.9, 7)
    targets = np.column_stack([0.9 * np.cos(s), 0.9 * np.sin(s)])
    dist = model.predict_dist(targets)
    order = np.argsort(-dist.weights, axis=1)
    rows = np.arange(len(targets))
    best = dist.means[rows, order[:, 0]]
    second = dist.means[rows, order[:, 1]]
    mean = dist.mean()
    err = {
        name: np.linalg.norm(forward(a) - targets, axis=1).mean()
        for name, a in [("mode 1", best), ("mode 2", second), ("mean", mean)]
    }
    print("mean distance of the hand from the target:")
    for name, e in err.items():
        print(f"  {name:7s} {e:.3f}")

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 5.6))
    for i, target in enumerate(targets):
        for angles, style, label in [
            (best[i], "-", "most probable component"),
            (second[i], "--", "second component"),
            (mean[i], ":", "mixture mean (what least squares gives)"),
        ]:
            t1 = angles[0]
            elbow = (L1 * np.cos(t1), L1 * np.sin(t1))
            hand = forward(angles[None])[0]
            color = {"-": "C0", "--": "C1", ":": "C3"}[style]
            ax0.plot(
                [0, elbow[0], hand[0]],
                [0, elbow[1], hand[1]],
                style,
                color=color,
                marker="o",
                ms=3,
                label=label if i == 0 else None,
            )
        ax0.plot(*target, "kx", ms=9, mew=2, label="target" if i == 0 else None)
    ax0.set_aspect("equal")
    ax0.set_xlim(-0.3, 1.5)
    ax0.set_ylim(-1.1, 1.1)
    ax0.set_title("Arms reaching targets (x) from predicted angles")
    ax0.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=2, fontsize="small"
    )

    # The density of the elbow angle theta2 for targets on the x axis at
    # increasing distance r from the shoulder: two branches, +-theta2(r).
    r_grid = np.linspace(0.35, 1.35, 200)
    gdist = model.predict_dist(np.column_stack([r_grid, np.zeros_like(r_grid)]))
    # The modes are far narrower than a pixel, so a density sampled at points
    # misses most peaks and the exact curves hide the rest: show instead the
    # probability of each bin of theta2 (from the exact CDF), in bins a few
    # pixels tall, as the mean density over the bin.
    edges = np.linspace(-3.2, 3.2, 129)
    cdf = gdist.marginal(1).cdf(np.repeat(edges[:, None], r_grid.size, axis=1))
    dens = np.diff(cdf, axis=0) / np.diff(edges)[:, None]
    image = ax1.imshow(
        np.sqrt(dens),
        origin="lower",
        aspect="auto",
        extent=(r_grid[0], r_grid[-1], edges[0], edges[-1]),
        cmap="viridis",
    )
    fig.colorbar(image, ax=ax1, label="sqrt p(theta2 | target), bin mean")
    cos_t2 = (r_grid**2 - L1**2 - L2**2) / (2 * L1 * L2)
    exact = np.arccos(np.clip(cos_t2, -1, 1))
    ax1.plot(r_grid, exact, ls=(0, (4, 4)), c="C3", lw=0.9, label="exact elbow angles")
    ax1.plot(r_grid, -exact, ls=(0, (4, 4)), c="C3", lw=0.9)
    ax1.set_xlabel("distance of the target from the shoulder")
    ax1.set_ylabel("elbow angle theta2 (rad)")
    ax1.set_title("Predicted density of the elbow angle: two modes")
    ax1.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    out = Path(__file__).parent / "figures" / "robot_arm.png"
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"saved {out}")
    return err


if __name__ == "__main__":
    main()
