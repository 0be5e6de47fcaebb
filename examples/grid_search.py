"""Choosing the number of components and the noise model with GridSearchCV.

``MDNRegressor.score`` is the mean held-out log-likelihood, so GridSearchCV
selects the model whose predicted densities explain new data best. The search
runs in two worker processes (``n_jobs=2``); joblib gives each worker
``cpu_count // 2`` threads and skmdn's training follows, so the workers do not
oversubscribe the cores.

Run: ``python examples/grid_search.py`` (writes examples/figures/grid_search.png).
"""

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold

from skmdn import MDNRegressor
from skmdn.plotting import plot_conditional_density


def inverse_sine(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, n)
    t = x + 0.3 * np.sin(2.0 * np.pi * x) + rng.uniform(-0.1, 0.1, n)
    return t[:, None], x


def main():
    # max_iter is kept short for a quick example; scikit-learn passes this
    # filter on to the joblib workers.
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    X, y = inverse_sine(1500, seed=0)
    components = [1, 2, 3, 5]
    noise_types = ["diagonal", "isotropic_across"]
    search = GridSearchCV(
        MDNRegressor(
            hidden_layer_sizes=(32, 32),
            learning_rate_init=3e-3,
            max_iter=100,
            n_iter_no_change=15,
            random_state=0,
        ),
        {"n_components": components, "noise_type": noise_types},
        cv=KFold(3, shuffle=True, random_state=0),
        n_jobs=2,
    ).fit(X, y)
    print("best:", search.best_params_, f"score {search.best_score_:.3f}")

    scores = np.empty((len(noise_types), len(components)))
    for params, score in zip(
        search.cv_results_["params"],
        search.cv_results_["mean_test_score"],
        strict=True,
    ):
        i = noise_types.index(params["noise_type"])
        scores[i, components.index(params["n_components"])] = score
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.6))
    image = ax0.imshow(scores, cmap="viridis", aspect="auto")
    for (i, j), value in np.ndenumerate(scores):
        ax0.text(
            j,
            i,
            f"{value:.2f}",
            ha="center",
            va="center",
            color="w" if value < scores.mean() else "k",
        )
    ax0.set_xticks(range(len(components)), [str(c) for c in components])
    ax0.set_yticks(range(len(noise_types)), noise_types)
    ax0.set_xlabel("n_components")
    ax0.set_ylabel("noise_type")
    ax0.set_title("Mean held-out log-likelihood (3-fold CV)")
    fig.colorbar(image, ax=ax0, label="nats per sample")
    plot_conditional_density(search.best_estimator_, X=X, y=y, ax=ax1)
    best = search.best_params_
    ax1.set_title(
        f"Best: n_components={best['n_components']}, noise_type='{best['noise_type']}'"
    )
    fig.tight_layout()
    out = Path(__file__).parent / "figures" / "grid_search.png"
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=100)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
