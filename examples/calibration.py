"""What the model learned and whether its densities are calibrated.

Bishop's inverse-sine problem has up to three branches of y for one x. An MDN
with 5 components and a one-component model (a heteroscedastic Gaussian) are
fitted; ``skmdn.plotting`` shows the conditional density, the mixture
parameters, the loss curves, and the probability integral transform (PIT) of
held-out data: uniform PIT values (a flat histogram, a diagonal calibration
curve) mean calibrated predictive distributions.

Run: ``python examples/calibration.py`` (writes examples/figures/calibration.png).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from skmdn import MDNRegressor
from skmdn.plotting import (
    plot_calibration,
    plot_conditional_density,
    plot_loss_curve,
    plot_mixture_means,
    plot_mixture_weights,
    plot_pit_histogram,
)


def inverse_sine(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, n)
    t = x + 0.3 * np.sin(2.0 * np.pi * x) + rng.uniform(-0.1, 0.1, n)
    return t[:, None], x


def main():
    X, y = inverse_sine(3000, seed=0)
    X_test, y_test = inverse_sine(2000, seed=1)
    params = dict(
        hidden_layer_sizes=(32, 32),
        learning_rate_init=3e-3,
        max_iter=400,
        early_stopping=True,
        n_iter_no_change=20,
        random_state=0,
    )
    mdn = MDNRegressor(n_components=5, **params).fit(X, y)
    gauss = MDNRegressor(n_components=1, **params).fit(X, y)
    print(
        f"held-out log-likelihood: MDN {mdn.score(X_test, y_test):.3f}, "
        f"one Gaussian {gauss.score(X_test, y_test):.3f}"
    )

    x = np.linspace(X.min(), X.max(), 300)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    plot_conditional_density(mdn, X=X, y=y, n_samples=0, ax=axes[0, 0])
    axes[0, 0].set_title("MDN: p(y | x), data, mean and approx. mode")
    plot_mixture_weights(mdn, x, ax=axes[0, 1])
    axes[0, 1].set_title("Mixture weights")
    plot_mixture_means(mdn, x, ax=axes[0, 2])
    axes[0, 2].set_title("Component means +- 2 sd (opacity = weight)")
    plot_loss_curve(mdn, ax=axes[1, 0])
    axes[1, 0].set_title("Loss curve (MDN)")
    plot_pit_histogram(mdn, X_test, y_test, ax=axes[1, 1])
    axes[1, 1].set_title("PIT histogram of held-out data (MDN)")
    plot_calibration(mdn, X_test, y_test, ax=axes[1, 2], label="MDN, 5 components")
    plot_calibration(
        gauss, X_test, y_test, ax=axes[1, 2], label="1 component (Gaussian)"
    )
    axes[1, 2].set_title("Calibration of held-out data")
    fig.tight_layout()
    out = Path(__file__).parent / "figures" / "calibration.png"
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=100)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
