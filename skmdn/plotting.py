"""Plots of what a fitted :class:`~skmdn.MDNRegressor` learned (matplotlib).

matplotlib is an optional dependency: ``pip install matplotlib``. Every
function draws on ``ax`` (a new figure's axes when ``ax=None``) and returns
that :class:`matplotlib.axes.Axes`. Like the scorers of :mod:`skmdn.metrics`,
every function takes a fitted model, or a fitted
:class:`~sklearn.pipeline.Pipeline` (or search) that ends in one, whose other
steps then transform the inputs.

- :func:`plot_conditional_density`: ``p(y | x)`` of a model with one input
  feature as a heat map, with data, samples and point estimates.
- :func:`plot_mixture_weights` and :func:`plot_mixture_means`: the mixture
  parameters along ``x``.
- :func:`plot_loss_curve`: training loss and validation NLL per epoch.
- :func:`plot_pit_histogram` and :func:`plot_calibration`: probability
  integral transform (PIT) of held-out data; a calibrated model gives uniform
  PIT values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._transformed import TransformedMixture, from_transformed
from ._utils import check_finite_targets
from .metrics import _distribution_model

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from ._mixture import GaussianMixture

__all__ = [
    "plot_calibration",
    "plot_conditional_density",
    "plot_loss_curve",
    "plot_mixture_means",
    "plot_mixture_weights",
    "plot_pit_histogram",
]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised without matplotlib
        raise ImportError(
            "skmdn.plotting needs matplotlib; install it with `pip install matplotlib`."
        ) from exc
    return plt


def _get_ax(ax: Axes | None) -> Axes:
    if ax is None:
        _, ax = _pyplot().subplots()
    return ax


def _check_1d_input(model, x) -> np.ndarray:
    check_is_fitted(model)
    if model.n_features_in_ != 1:
        raise ValueError(
            f"This plot needs a model with one input feature; the model has "
            f"{model.n_features_in_}. Plot a slice through X instead."
        )
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.size < 2 or not np.isfinite(x).all() or x.min() == x.max():
        raise ValueError(
            "x must hold at least two distinct finite values (the plot spans "
            f"their range); got {x.size} value(s): {np.unique(x)[:5]}."
        )
    return np.sort(x)


def _predict_on(model, x: np.ndarray) -> GaussianMixture:
    """``predict_dist`` on a 1-D grid, keeping pandas column names if fitted so."""
    names = getattr(model, "feature_names_in_", None)
    X = x[:, None]
    if names is not None:
        import pandas as pd

        X = pd.DataFrame(X, columns=list(names))
    return _dist_of(model, X)


def _dist_of(model, X) -> GaussianMixture:
    """``predict_dist(X)`` of ``model``, or of the MDN that ends a pipeline
    (``X`` through the other steps) or a fitted search, as the scorers do."""
    model, X = _distribution_model(model, X, "This plot shows a distribution")
    return model.predict_dist(X)


def _marginal_of(dist: GaussianMixture, output: int) -> GaussianMixture:
    """The univariate marginal mixture of output ``output`` (range-checked)."""
    if not 0 <= output < dist.n_outputs:
        raise ValueError(
            f"output={output} is out of range for a model with "
            f"{dist.n_outputs} output(s)."
        )
    return dist.marginal(output)


def _components(
    dist: GaussianMixture | TransformedMixture, output: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weights (n, K), centres and the ends of the ``+-2 sigma`` bands
    (n, K each) of output ``output``'s marginal components: the means, or
    for a :class:`~skmdn.TransformedMixture` the components' medians and
    the transforms of the base's band ends (each log-normal's central
    95.4 %)."""
    marginal = _marginal_of(dist, output)
    base = getattr(marginal, "base", marginal)
    mu, sd = base.means[..., 0], base.scales[..., 0]
    ends = mu, mu - 2 * sd, mu + 2 * sd
    if isinstance(marginal, TransformedMixture):
        ends = tuple(from_transformed(a, marginal.transform) for a in ends)
    return (marginal.weights, *ends)


def _target_column(y, dist: GaussianMixture, output: int) -> np.ndarray:
    """Output ``output`` of the targets ``y`` (1-D, or 2-D with a column per
    output of ``dist``), all finite: a NaN would otherwise vanish from a
    histogram or bend a curve without notice."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 2:
        if y.shape[1] != dist.n_outputs:
            raise ValueError(
                f"y has {y.shape[1]} columns; the model has {dist.n_outputs} "
                "output(s), one column each."
            )
        y = y[:, output]
    check_finite_targets(y)
    return y


def _pit(dist: GaussianMixture, y, output: int = 0) -> np.ndarray:
    """Probability integral transform ``F(y | x)`` of each row's marginal mixture
    (:meth:`GaussianMixture.cdf` of the marginal, at most 1)."""
    marginal = _marginal_of(dist, output)
    y = _target_column(y, dist, output)
    if y.shape != (len(dist),):
        raise ValueError(f"y must have {len(dist)} rows; got shape {y.shape}.")
    # at most 1 (GaussianMixture.cdf caps it): ax.hist would drop larger values
    return marginal.cdf(y)


def plot_conditional_density(
    model,
    x=None,
    *,
    X=None,
    y=None,
    y_range: tuple[float, float] | None = None,
    output: int = 0,
    n_points: int = 200,
    n_samples: int = 0,
    point_estimates: tuple[str, ...] = ("mean", "approx_mode"),
    random_state=0,
    cmap: str = "viridis",
    gamma: float = 0.5,
    ax: Axes | None = None,
) -> Axes:
    """Heat map of the conditional density ``p(y | x)`` of a one-feature model.

    Parameters
    ----------
    model : MDNRegressor or Pipeline
        A fitted model with ``n_features_in_ == 1``, or a fitted pipeline
        (or search) that ends in one and takes one input feature.
    x : array-like of shape (n,), default=None
        Input values (sorted internally; they need not be evenly spaced),
        each drawn as a column of the heat map centred on it. Defaults to
        ``n_points`` values spanning ``X``.
    X, y : array-like, default=None
        Data to scatter over the heat map (e.g. the training set).
    y_range : (float, float), default=None
        Range of the target axis; defaults to the range of ``y`` (without
        ``y``, of the component means +- 2 standard deviations) padded by 10%.
    output : int, default=0
        Which output to show (its marginal density) for multi-output models.
    n_points : int, default=200
        Number of grid values of ``y``, and of ``x`` when it defaults to the
        span of ``X``.
    n_samples : int, default=0
        Samples from the model drawn at each grid value of ``x`` and shown as
        dots.
    point_estimates : tuple of {'mean', 'approx_mode'}, \
default=('mean', 'approx_mode')
        Point predictions drawn as lines.
    random_state : int, Generator, RandomState or None, default=0
        Seed of the samples (as for :meth:`GaussianMixture.sample`).
    cmap : str, default='viridis'
        Colour map of the density.
    gamma : float, default=0.5
        Exponent of the colour scale (:class:`matplotlib.colors.PowerNorm`);
        below 1 keeps spread-out, multimodal regions visible next to sharp
        peaks. 1 is a linear scale.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    matplotlib.axes.Axes
        With one image (the density, a
        :class:`~matplotlib.image.NonUniformImage`), one line per point
        estimate and one scatter collection each for the data and the samples.

    Examples
    --------
    >>> import numpy as np
    >>> from skmdn import MDNRegressor
    >>> from skmdn.plotting import plot_conditional_density
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (200, 1)); y = np.sin(3 * X[:, 0])
    >>> model = MDNRegressor(n_components=2, max_iter=5, random_state=0).fit(X, y)
    >>> ax = plot_conditional_density(model, X=X, y=y)
    >>> len(ax.images)
    1
    """
    if X is not None and x is None:
        X_values = np.asarray(X, dtype=np.float64)
        if X_values.size == 0:
            raise ValueError("X is empty: give data to plot, or x (input values).")
        x = np.linspace(np.min(X_values), np.max(X_values), n_points)
    if x is None:
        raise ValueError("Give x (input values) or X (data to plot).")
    x = _check_1d_input(model, x)
    ax = _get_ax(ax)
    from matplotlib.colors import PowerNorm
    from matplotlib.image import NonUniformImage

    dist = _predict_on(model, x)
    marginal = _marginal_of(dist, output)
    if y_range is None:
        if y is not None:
            yo = _target_column(y, dist, output)
            lo, hi = float(np.min(yo)), float(np.max(yo))
        else:
            _, _, low_ends, high_ends = _components(dist, output)
            lo, hi = float(np.min(low_ends)), float(np.max(high_ends))
        pad = 0.1 * (hi - lo if hi > lo else 1.0)
        y_range = (lo - pad, hi + pad)
    grid = np.linspace(y_range[0], y_range[1], n_points)
    # (m, n): the marginal density at every grid value of y, for every x
    density = marginal.pdf(np.broadcast_to(grid[:, None], (grid.size, x.size)))
    # A cell centred on every x and grid value of y: the density is drawn
    # where it was evaluated, for unevenly spaced x too (imshow would spread
    # the columns evenly between x[0] and x[-1], as cell edges).
    image = NonUniformImage(
        ax, interpolation="nearest", cmap=cmap, norm=PowerNorm(gamma, vmin=0.0)
    )
    image.set_data(x, grid, density)
    # the data's span, which layout (tight_layout, bbox_inches="tight") and
    # autoscaling read; without it they fail on a NonUniformImage
    image.set_extent((x[0], x[-1], grid[0], grid[-1]))
    ax.add_image(image)
    ax.figure.colorbar(image, ax=ax, label="p(y | x)")
    if X is not None and y is not None:
        yo = _target_column(y, dist, output)
        ax.scatter(
            np.asarray(X, dtype=np.float64).reshape(-1),
            yo,
            s=2,
            c="white",
            alpha=0.25,
            linewidths=0,
            label="data",
        )
    if n_samples > 0:
        draws = dist.sample(n_samples, random_state=random_state)
        draws = draws if dist.univariate else draws[..., output]
        ax.scatter(
            np.repeat(x, n_samples),
            draws.reshape(-1),
            s=3,
            c="tab:red",
            alpha=0.5,
            linewidths=0,
            label="model samples",
        )
    styles = {"mean": ("tab:orange", "-"), "approx_mode": ("tab:pink", "--")}
    for name in point_estimates:
        if name not in styles:
            raise ValueError(
                f"point_estimates may hold 'mean' and 'approx_mode'; got {name!r}."
            )
        values = dist.mean() if name == "mean" else dist.approx_mode()
        values = values if dist.univariate else values[:, output]
        color, style = styles[name]
        ax.plot(x, values, color=color, linestyle=style, lw=2, label=name)
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(*y_range)
    ax.set_xlabel("x")
    ax.set_ylabel("y" if dist.n_outputs == 1 else f"y[{output}]")
    if ax.get_legend_handles_labels()[0]:  # a bare heat map has nothing to label
        ax.legend(loc="upper left", fontsize="small", framealpha=0.8, markerscale=4)
    return ax


def plot_mixture_weights(model, x, *, ax: Axes | None = None) -> Axes:
    """Mixture weights ``pi_k(x)`` of a one-feature model, one line per component.

    Parameters
    ----------
    model : MDNRegressor or Pipeline
        A fitted model with ``n_features_in_ == 1``, or a fitted pipeline
        (or search) that ends in one and takes one input feature.
    x : array-like of shape (n,)
        Input values (sorted internally).
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    matplotlib.axes.Axes
        With ``n_components`` lines.

    Examples
    --------
    >>> import numpy as np
    >>> from skmdn import MDNRegressor
    >>> from skmdn.plotting import plot_mixture_weights
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (100, 1))
    >>> y = np.sin(3 * X[:, 0]) + 0.1 * rng.normal(size=100)
    >>> model = MDNRegressor(n_components=2, max_iter=5, random_state=0).fit(X, y)
    >>> ax = plot_mixture_weights(model, np.linspace(-1, 1, 50))
    >>> len(ax.lines)  # one per component
    2
    """
    x = _check_1d_input(model, x)
    ax = _get_ax(ax)
    weights = _predict_on(model, x).weights
    for k in range(weights.shape[1]):
        ax.plot(x, weights[:, k], color=f"C{k % 10}", label=f"component {k}")
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("x")
    ax.set_ylabel("weight $\\pi_k(x)$")
    ax.legend(loc="best", fontsize="small")
    return ax


def plot_mixture_means(
    model, x, *, output: int = 0, bands: bool = True, ax: Axes | None = None
) -> Axes:
    """Component means ``mu_k(x)`` of a one-feature model, with their weights.

    Each mean is drawn with opacity equal to the component's weight (at least
    0.05, so that a component of negligible weight stays visible), with
    optional ``mu_k +- 2 sigma_k`` bands. For a model fitted with
    ``target_transform`` the lines are the log-normal components' medians and
    the bands the transforms of ``mu_k +- 2 sigma_k`` (each component's
    central 95.4 %).

    Parameters
    ----------
    model : MDNRegressor or Pipeline
        A fitted model with ``n_features_in_ == 1``, or a fitted pipeline
        (or search) that ends in one and takes one input feature.
    x : array-like of shape (n,)
        Input values (sorted internally).
    output : int, default=0
        Which output's means to draw.
    bands : bool, default=True
        Shade ``mu_k +- 2 sigma_k``, with opacity 0.2 times the weight.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    matplotlib.axes.Axes
        With one line collection per component (plus one band each).

    Examples
    --------
    >>> import numpy as np
    >>> from skmdn import MDNRegressor
    >>> from skmdn.plotting import plot_mixture_means
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (100, 1))
    >>> y = np.sin(3 * X[:, 0]) + 0.1 * rng.normal(size=100)
    >>> model = MDNRegressor(n_components=2, max_iter=5, random_state=0).fit(X, y)
    >>> ax = plot_mixture_means(model, np.linspace(-1, 1, 50))
    >>> len(ax.collections)  # a line and a band per component
    4
    """
    x = _check_1d_input(model, x)
    ax = _get_ax(ax)
    from matplotlib.collections import LineCollection, PolyCollection

    dist = _predict_on(model, x)
    w, mu, low_ends, high_ends = _components(dist, output)
    for k in range(w.shape[1]):
        color = np.array(_rgba(f"C{k % 10}"))
        alpha = 0.5 * (w[:-1, k] + w[1:, k])  # one value per segment
        if bands:
            # one (n - 1, 4, 2) array, not a list of tuples built row by row:
            # on 1e5 rows 0.03 against 1.0 s, and PolyCollection took 0.7
            # against 2.6 s (measured, per component)
            lo, hi = low_ends[:, k], high_ends[:, k]
            quads = np.stack(
                [
                    np.column_stack([x[:-1], lo[:-1]]),
                    np.column_stack([x[1:], lo[1:]]),
                    np.column_stack([x[1:], hi[1:]]),
                    np.column_stack([x[:-1], hi[:-1]]),
                ],
                axis=1,
            )
            face = np.tile(color, (len(quads), 1))
            face[:, 3] = 0.2 * alpha
            ax.add_collection(PolyCollection(quads, facecolors=face, linewidths=0))
        segments = np.stack(
            [
                np.column_stack([x[:-1], mu[:-1, k]]),
                np.column_stack([x[1:], mu[1:, k]]),
            ],
            axis=1,
        )
        line_colors = np.tile(color, (len(segments), 1))
        line_colors[:, 3] = np.clip(alpha, 0.05, 1.0)
        ax.add_collection(
            LineCollection(
                segments, colors=line_colors, linewidths=2, label=f"component {k}"
            )
        )
    ax.autoscale_view()
    ax.set_xlabel("x")
    if isinstance(dist, TransformedMixture):  # the components' medians
        ax.set_ylabel("median of component k (opacity = weight)")
    else:
        ax.set_ylabel("mean $\\mu_k(x)$ (opacity = weight)")
    from matplotlib.lines import Line2D

    handles = [  # opaque legend entries (the collections fade with the weight)
        Line2D([], [], color=f"C{k % 10}", lw=2, label=f"component {k}")
        for k in range(w.shape[1])
    ]
    ax.legend(handles=handles, loc="best", fontsize="small")
    return ax


def _rgba(color: str) -> tuple[float, float, float, float]:
    from matplotlib.colors import to_rgba

    return to_rgba(color)


def plot_loss_curve(model, *, ax: Axes | None = None) -> Axes:
    """Training loss per epoch and, with ``early_stopping``, the validation NLL.

    Parameters
    ----------
    model : MDNRegressor or Pipeline
        A fitted model, or a fitted pipeline (or search) that ends in one.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    matplotlib.axes.Axes
        With one line (``loss_curve_``) or two (also ``-validation_scores_``).

    Examples
    --------
    >>> import numpy as np
    >>> from skmdn import MDNRegressor
    >>> from skmdn.plotting import plot_loss_curve
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (100, 1))
    >>> y = np.sin(3 * X[:, 0]) + 0.1 * rng.normal(size=100)
    >>> model = MDNRegressor(n_components=2, max_iter=5, random_state=0).fit(X, y)
    >>> ax = plot_loss_curve(model)  # early stopping held out 10 %
    >>> [line.get_label() for line in ax.lines]
    ['training NLL', 'validation NLL']
    """
    check_is_fitted(model)
    model, _ = _distribution_model(model, None, "This plot shows a training loss")
    ax = _get_ax(ax)
    epochs = np.arange(1, len(model.loss_curve_) + 1)
    ax.plot(epochs, model.loss_curve_, label="training NLL")
    if model.validation_scores_ is not None:
        ax.plot(
            epochs,
            -np.asarray(model.validation_scores_),
            label="validation NLL",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean negative log-likelihood (nats)")
    ax.legend(loc="best")
    return ax


def _pit_of(model, X, y, output: int) -> np.ndarray:
    return _pit(_dist_of(model, X), y, output)


def plot_pit_histogram(
    model, X, y, *, bins: int = 20, output: int = 0, ax: Axes | None = None
) -> Axes:
    """Histogram of the PIT values ``F(y_i | x_i)`` of held-out data.

    A calibrated model gives a flat histogram (the dashed line); a U shape
    means over-confident predictive distributions, a hump under-confident
    ones.

    Parameters
    ----------
    model : MDNRegressor or Pipeline
        A fitted model, or a fitted pipeline (or search) that ends in one.
    X : array-like of shape (n_samples, n_features)
        Inputs (of the pipeline, if ``model`` is one), preferably not used
        for training.
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Targets.
    bins : int, default=20
        Number of equal-width bins on [0, 1].
    output : int, default=0
        Which output's marginal PIT to show.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    matplotlib.axes.Axes
        With ``bins`` bars (density scale) and the uniform reference line.

    Examples
    --------
    >>> import numpy as np
    >>> from skmdn import MDNRegressor
    >>> from skmdn.plotting import plot_pit_histogram
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (100, 1))
    >>> y = np.sin(3 * X[:, 0]) + 0.1 * rng.normal(size=100)
    >>> model = MDNRegressor(n_components=2, max_iter=5, random_state=0).fit(X, y)
    >>> ax = plot_pit_histogram(model, X, y, bins=10)
    >>> len(ax.patches)  # the bars
    10
    """
    pit = _pit_of(model, X, y, output)
    ax = _get_ax(ax)
    ax.hist(pit, bins=bins, range=(0.0, 1.0), density=True, color="C0", alpha=0.8)
    ax.axhline(1.0, color="k", linestyle="--", lw=1, label="uniform")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("PIT  $F(y \\mid x)$")
    ax.set_ylabel("density")
    ax.legend(loc="best")
    return ax


def plot_calibration(
    model, X, y, *, output: int = 0, ax: Axes | None = None, **kwargs: Any
) -> Axes:
    """Calibration curve: observed frequency of ``F(y | x) <= q`` against ``q``.

    The empirical CDF of the PIT values; a calibrated model follows the
    diagonal.

    Parameters
    ----------
    model : MDNRegressor or Pipeline
        A fitted model, or a fitted pipeline (or search) that ends in one.
    X : array-like of shape (n_samples, n_features)
        Inputs (of the pipeline, if ``model`` is one), preferably not used
        for training.
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Targets.
    output : int, default=0
        Which output's marginal PIT to use.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.
    **kwargs
        Passed to ``ax.plot`` for the calibration curve (by default
        ``label='model'`` and ``drawstyle='steps-post'``).

    Returns
    -------
    matplotlib.axes.Axes
        With the diagonal (drawn once per Axes) and the calibration curve, so
        several models can share one Axes.

    Examples
    --------
    >>> import numpy as np
    >>> from skmdn import MDNRegressor
    >>> from skmdn.plotting import plot_calibration
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (100, 1))
    >>> y = np.sin(3 * X[:, 0]) + 0.1 * rng.normal(size=100)
    >>> model = MDNRegressor(n_components=2, max_iter=5, random_state=0).fit(X, y)
    >>> ax = plot_calibration(model, X, y, label="5 epochs")
    >>> longer = MDNRegressor(n_components=2, max_iter=20, random_state=0)
    >>> ax = plot_calibration(longer.fit(X, y), X, y, label="20 epochs", ax=ax)
    >>> [line.get_label() for line in ax.lines]  # one diagonal
    ['ideal', '5 epochs', '20 epochs']
    """
    pit = np.sort(_pit_of(model, X, y, output))
    ax = _get_ax(ax)
    if not any(line.get_label() == "ideal" for line in ax.get_lines()):
        ax.plot([0, 1], [0, 1], color="k", linestyle="--", lw=1, label="ideal")
    observed = np.arange(1, len(pit) + 1) / len(pit)
    kwargs.setdefault("label", "model")
    kwargs.setdefault("drawstyle", "steps-post")  # the empirical CDF
    ax.plot(
        np.concatenate([[0.0], pit, [1.0]]),
        np.concatenate([[0.0], observed, [1.0]]),
        **kwargs,
    )
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_aspect("equal")
    ax.set_xlabel("predicted quantile level q")
    ax.set_ylabel("observed frequency of y <= q-quantile")
    ax.legend(loc="upper left")
    return ax
