"""A Pipeline on a mixed-type pandas frame: scaling, one-hot categories, MDN.

House prices with numeric and categorical features, and an unobserved
"renovated" flag that makes the log-price bimodal for every house. The true
conditional density is known, so the figure compares the pipeline's predicted
density with the truth for three houses, and shows the calibration of
held-out data.

Run: ``python examples/pandas_pipeline.py`` (writes
examples/figures/pandas_pipeline.png).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skmdn import MDNRegressor
from skmdn.plotting import plot_calibration

CITY = {"north": 0.3, "south": 0.0, "east": -0.2}
KIND = {"flat": 0.0, "house": 0.4}
P_RENOVATED, RENOVATION, NOISE = 0.3, 0.5, 0.08


def make_houses(n, seed):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "size_m2": rng.uniform(30, 200, n),
            "age_years": rng.integers(0, 80, n).astype(float),
            "city": pd.Categorical(rng.choice(list(CITY), n)),
            "kind": rng.choice(list(KIND), n),
        }
    )
    renovated = rng.random(n) < P_RENOVATED
    log_price = true_centre(frame) + RENOVATION * renovated
    return frame, log_price + NOISE * rng.normal(size=n)


def true_centre(frame):
    return (
        11.0
        + 0.8 * np.log(frame["size_m2"].to_numpy() / 100)
        - 0.004 * frame["age_years"].to_numpy()
        + frame["city"].map(CITY).to_numpy(dtype=float)
        + frame["kind"].map(KIND).to_numpy(dtype=float)
    )


def true_density(frame, grid):
    centre = true_centre(frame)[:, None]
    return (1 - P_RENOVATED) * stats.norm.pdf(
        grid, centre, NOISE
    ) + P_RENOVATED * stats.norm.pdf(grid, centre + RENOVATION, NOISE)


def main():
    houses, log_price = make_houses(4000, seed=0)
    test, test_price = make_houses(2000, seed=1)
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), make_column_selector(dtype_include="number")),
            (
                "cat",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                make_column_selector(dtype_exclude="number"),
            ),
        ]
    )
    mdn = MDNRegressor(
        n_components=3,
        hidden_layer_sizes=(32, 32),
        learning_rate_init=3e-3,
        early_stopping=True,
        n_iter_no_change=20,
        max_iter=300,
        random_state=0,
    )
    pipe = make_pipeline(pre, mdn).set_output(transform="pandas")
    pipe.fit(houses, log_price)
    print(f"held-out mean log-likelihood: {pipe.score(test, test_price):.3f}")
    print(f"features seen by the MDN: {list(pipe[-1].feature_names_in_)}")

    examples = test.iloc[:3]
    grid = np.linspace(log_price.min() - 0.2, log_price.max() + 0.2, 600)
    # A Pipeline exposes predict/score; for the distribution, transform first.
    dist = pipe[-1].predict_dist(pipe[:-1].transform(examples))
    predicted = dist.pdf(np.repeat(grid[:, None], 3, axis=1))  # (600, 3)
    truth = true_density(examples, grid)  # (3, 600)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.8))
    for i, (_, row) in enumerate(examples.iterrows()):
        label = f"{row['size_m2']:.0f} m2, {row['age_years']:.0f} y, {row['city']}, "
        label += row["kind"]
        ax0.plot(grid, predicted[:, i], color=f"C{i}", lw=2, label=label)
        ax0.plot(grid, truth[i], color=f"C{i}", ls="--", lw=1)
    ax0.plot([], [], "k--", lw=1, label="true density (dashed)")
    ax0.set_xlabel("log price")
    ax0.set_ylabel("p(log price | house)")
    ax0.set_title("Predicted (solid) and true (dashed) densities")
    ax0.legend(fontsize="small", loc="upper left")
    plot_calibration(pipe, test, test_price, ax=ax1)  # X goes through pre
    ax1.set_title("Calibration on 2000 held-out houses")
    fig.tight_layout()
    out = Path(__file__).parent / "figures" / "pandas_pipeline.png"
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=100)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
