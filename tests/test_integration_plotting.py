"""skmdn.plotting draws what the model predicts (Agg backend, real matplotlib)."""

import numpy as np
import pytest
from scipy import stats

from skmdn import MDNRegressor

matplotlib = pytest.importorskip("matplotlib", reason="matplotlib is not installed")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from skmdn.plotting import (  # noqa: E402
    _pit,
    plot_calibration,
    plot_conditional_density,
    plot_loss_curve,
    plot_mixture_means,
    plot_mixture_weights,
    plot_pit_histogram,
)
from tests.conftest import make_inverse_sine  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def model():
    X, y = make_inverse_sine(400, seed=0)
    return MDNRegressor(
        n_components=3,
        hidden_layer_sizes=(16,),
        max_iter=15,
        early_stopping=True,
        random_state=0,
    ).fit(X, y)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_conditional_density_image_is_the_model_density(model):
    X, y = make_inverse_sine(100, seed=1)
    x = np.linspace(0.0, 1.0, 40)
    _, ax = plt.subplots()
    out = plot_conditional_density(
        model, x, X=X, y=y, y_range=(-0.2, 1.2), n_points=40, n_samples=3, ax=ax
    )
    assert out is ax
    assert len(ax.images) == 1
    image = ax.images[0].get_array()
    assert image.shape == (40, 40)  # (y grid, x grid)
    # Column j is the model's pdf at x[j] over the y grid.
    grid = np.linspace(-0.2, 1.2, 40)
    expected = model.predict_dist(np.repeat(x[5], 40)[:, None]).pdf(grid)
    np.testing.assert_allclose(image[:, 5], expected, rtol=1e-10)
    np.testing.assert_allclose(ax.images[0].get_extent(), [0.0, 1.0, -0.2, 1.2])
    # One line per point estimate: the mean line is the model's mean.
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"mean", "approx_mode"}
    np.testing.assert_allclose(lines["mean"].get_ydata(), model.predict(x[:, None]))
    # Two scatters: the 100 data points and 3 samples per grid value.
    sizes = sorted(len(c.get_offsets()) for c in ax.collections)
    assert sizes == [100, 120]
    # the figure lays out and saves (examples call both)
    import io

    ax.figure.tight_layout()
    ax.figure.savefig(io.BytesIO(), format="png", bbox_inches="tight")


def test_conditional_density_of_a_full_covariance_output_is_its_marginal():
    # The image of output 1 of a 'full' model is the mixture of the
    # components' marginals N(mu_k1, Sigma_k11), evaluated here with scipy.
    rng = np.random.default_rng(3)
    X = rng.uniform(0.0, 1.0, (200, 1))
    y = np.column_stack([X[:, 0], X[:, 0] ** 2]) + 0.1 * rng.normal(size=(200, 2))
    model = MDNRegressor(
        n_components=2, noise_type="full", hidden_layer_sizes=(8,), max_iter=3,
        random_state=0,
    ).fit(X, y)  # fmt: skip
    x, grid = np.array([0.2, 0.7]), np.linspace(-0.5, 1.5, 25)
    ax = plot_conditional_density(model, x, output=1, y_range=(-0.5, 1.5), n_points=25)
    d = model.predict_dist(x[:, None])
    for j in range(2):
        sd = np.sqrt(d.covariances[j, :, 1, 1])
        pdf = stats.norm.pdf(grid[:, None], d.means[j, :, 1], sd) @ d.weights[j]
        np.testing.assert_allclose(ax.images[0].get_array()[:, j], pdf, rtol=1e-10)


def test_conditional_density_alone_draws_no_empty_legend(model, recwarn):
    # The heat map without data, samples or point estimates has nothing to
    # label: no empty legend box, and no matplotlib warning about one.
    ax = plot_conditional_density(model, np.linspace(0.0, 1.0, 10), point_estimates=())
    assert ax.get_legend() is None
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
    assert len(ax.images) == 1


@pytest.mark.parametrize("x", [[0.0, 0.02, 0.04, 0.06, 1.0], np.linspace(0, 1, 5)])
def test_conditional_density_is_drawn_at_its_x(x):
    # Regression: imshow spread the columns evenly between x[0] and x[-1]
    # as cell edges, so for uneven x the heat map sat at the wrong x, away
    # from the mean line, and for even x half a cell off. Read back what is
    # drawn: in every pixel column the brightest pixel (grey colour map) must
    # lie on the mean line (read from the line) at the nearest x.
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (500, 1))
    y = 10 * X[:, 0] + 0.05 * rng.normal(size=500)
    m = MDNRegressor(
        n_components=1,
        hidden_layer_sizes=(16,),
        learning_rate_init=1e-2,
        max_iter=30,
        random_state=0,
    ).fit(X, y)
    fig, ax = plt.subplots(figsize=(6, 8), dpi=100)
    plot_conditional_density(
        m,
        x,
        y_range=(-1.0, 11.0),
        n_points=600,
        point_estimates=("mean",),
        cmap="gray",
        ax=ax,
    )
    (line,) = ax.get_lines()
    line_x, line_y = line.get_xdata(), line.get_ydata()
    np.testing.assert_array_equal(line_x, x)
    assert np.ptp(line_y) > 8  # the fit follows y = 10 x
    line.set_visible(False)
    ax.get_legend().set_visible(False)
    fig.canvas.draw()
    # Canvas rows count from the top; display coordinates from the bottom.
    pixels = np.asarray(fig.canvas.buffer_rgba())[::-1, :, :3].astype(int).sum(-1)
    (left, bottom), (right, top) = ax.transData.transform([(0.0, -1.0), (1.0, 11.0)])
    dx, dy = 1.0 / (right - left), 12.0 / (top - bottom)  # data units per pixel
    rows = np.arange(int(np.ceil(bottom)) + 1, int(top) - 1)
    mid = 0.5 * (line_x[:-1] + line_x[1:])
    checked = 0
    for col in range(int(np.ceil(left)) + 1, int(right) - 1):
        xc = (col + 0.5 - left) * dx
        if np.min(np.abs(xc - mid)) < 2 * dx:
            continue  # within two pixels of a cell boundary
        column = pixels[rows, col]
        brightest = rows[column == column.max()].mean()
        y_drawn = -1.0 + (brightest + 0.5 - bottom) * dy
        j = np.argmin(np.abs(line_x - xc))
        assert abs(y_drawn - line_y[j]) < 4 * dy, (xc, y_drawn, line_y[j])
        checked += 1
    assert checked > 0.9 * (right - left)


def test_mixture_weights_and_means(model):
    x = np.linspace(0.0, 1.0, 30)
    dist = model.predict_dist(x[:, None])
    ax = plot_mixture_weights(model, x)
    assert len(ax.get_lines()) == 3
    for k, line in enumerate(ax.get_lines()):
        np.testing.assert_allclose(line.get_ydata(), dist.weights[:, k])
    ax = plot_mixture_means(model, x, bands=False)
    assert len(ax.collections) == 3  # one line collection per component
    segments = ax.collections[1].get_segments()
    assert len(segments) == 29
    np.testing.assert_allclose([s[0, 1] for s in segments], dist.means[:-1, 1, 0])
    alpha = ax.collections[1].get_colors()[:, 3]
    w = 0.5 * (dist.weights[:-1, 1] + dist.weights[1:, 1])
    np.testing.assert_allclose(alpha, np.clip(w, 0.05, 1.0))
    ax = plot_mixture_means(model, x)
    assert len(ax.collections) == 6  # with bands
    # the band of component 1: a quadrilateral per segment, mu -+ 2 sigma at
    # both ends, in the model's own units
    mu, sd = dist.means[:, 1, 0], dist.scales[:, 1, 0]
    paths = ax.collections[2].get_paths()
    assert len(paths) == 29
    for i in (0, 13, 28):
        corners = paths[i].vertices[:4]
        want = [
            (x[i], mu[i] - 2 * sd[i]),
            (x[i + 1], mu[i + 1] - 2 * sd[i + 1]),
            (x[i + 1], mu[i + 1] + 2 * sd[i + 1]),
            (x[i], mu[i] + 2 * sd[i]),
        ]
        np.testing.assert_allclose(corners, want, rtol=1e-12)


def test_loss_curve_with_validation(model):
    ax = plot_loss_curve(model)
    train, val = ax.get_lines()
    np.testing.assert_allclose(train.get_ydata(), model.loss_curve_)
    np.testing.assert_allclose(val.get_ydata(), -np.asarray(model.validation_scores_))
    np.testing.assert_array_equal(train.get_xdata(), np.arange(1, model.n_iter_ + 1))
    model_no_val = MDNRegressor(
        hidden_layer_sizes=(8,), max_iter=3, early_stopping=False, random_state=0
    )
    model_no_val.fit(*make_inverse_sine(100))
    assert len(plot_loss_curve(model_no_val).get_lines()) == 1


def _scipy_mixture_cdf(dist, y):
    """``P(Y <= y_i)`` of each row's 1-D mixture, computed with scipy."""
    return np.array(
        [
            np.sum(
                dist.weights[i]
                * stats.norm.cdf(y[i], dist.means[i, :, 0], dist.scales[i, :, 0])
            )
            for i in range(len(y))
        ]
    )


def test_pit_matches_scipy_mixture_cdf(model):
    X, y = make_inverse_sine(50, seed=2)
    dist = model.predict_dist(X)
    reference = _scipy_mixture_cdf(dist, y)
    np.testing.assert_allclose(_pit(dist, y), reference, rtol=1e-12)


def test_pit_is_uniform_for_the_true_model():
    # A model fitted on Gaussian data with enough epochs: its PIT values are
    # close to uniform (Kolmogorov-Smirnov), and the histogram shows them.
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (1500, 1))
    y = 2 * X[:, 0] + (0.2 + 0.3 * (X[:, 0] > 0)) * rng.normal(size=1500)
    m = MDNRegressor(
        n_components=1,
        hidden_layer_sizes=(16,),
        learning_rate_init=1e-2,
        max_iter=60,
        random_state=0,
    ).fit(X, y)
    X_test = rng.uniform(-1, 1, (1000, 1))
    y_test = 2 * X_test[:, 0] + (0.2 + 0.3 * (X_test[:, 0] > 0)) * rng.normal(size=1000)
    pit = _pit(m.predict_dist(X_test), y_test)
    assert stats.kstest(pit, "uniform").pvalue > 1e-3
    ax = plot_pit_histogram(m, X_test, y_test, bins=10)
    heights = np.array([p.get_height() for p in ax.patches])
    assert len(heights) == 10
    np.testing.assert_allclose(heights.sum() * 0.1, 1.0)  # a density on [0, 1]
    expected = np.histogram(pit, bins=10, range=(0, 1), density=True)[0]
    np.testing.assert_allclose(heights, expected)


def test_calibration_curve_is_the_empirical_cdf_of_pit(model):
    X, y = make_inverse_sine(80, seed=3)
    ax = plot_calibration(model, X, y)
    plot_calibration(model, X, y, ax=ax, label="again")
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels.count("ideal") == 1 and len(labels) == 3
    curve = ax.get_lines()[1]
    pit = np.sort(_pit(model.predict_dist(X), y))
    np.testing.assert_allclose(curve.get_xdata()[1:-1], pit)
    np.testing.assert_allclose(curve.get_ydata()[1:-1], np.arange(1, 81) / 80)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_plots_reject_non_finite_targets(model, bad):
    # Regression: a NaN target dropped out of the PIT histogram and bent the
    # calibration curve (it still counted in the denominator) without notice.
    X, y = make_inverse_sine(40, seed=4)
    y = y.copy()
    y[3] = bad
    _every_target_plot_refuses(model, X, y, "NaN or infinity")


def _every_target_plot_refuses(model, X, y, match):
    """Each plot that takes targets raises a ValueError matching ``match``."""
    with pytest.raises(ValueError, match=match):
        plot_pit_histogram(model, X, y)
    with pytest.raises(ValueError, match=match):
        plot_calibration(model, X, y)
    with pytest.raises(ValueError, match=match):
        plot_conditional_density(model, X=X, y=y)


def test_plots_reject_models_with_several_features():
    rng = np.random.default_rng(0)
    m = MDNRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    m.fit(rng.normal(size=(50, 2)), rng.normal(size=50))
    with pytest.raises(ValueError, match="one input feature"):
        plot_conditional_density(m, np.linspace(0, 1, 5))
    with pytest.raises(ValueError, match="out of range"):
        _pit(m.predict_dist(rng.normal(size=(5, 2))), np.zeros(5), output=1)


def test_missing_matplotlib_says_how_to_install(monkeypatch, model):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install matplotlib") as info:
        plot_loss_curve(model)
    # skmdn is not on PyPI: `pip install skmdn[plot]` would fail
    assert "skmdn[" not in str(info.value)


def test_plots_reject_targets_with_the_wrong_number_of_columns(model):
    # Regression: a y with more columns than the model has outputs was
    # silently cut to its column `output`, so the PIT histogram, the
    # calibration curve and the scattered data showed the wrong column;
    # skmdn.metrics.pit rejects the same y.
    from skmdn.metrics import pit

    X, y = make_inverse_sine(40, seed=5)
    two = np.column_stack([y + 5.0, y])  # the model has one output
    with pytest.raises(ValueError, match="shape"):
        pit(two, model.predict_dist(X))
    _every_target_plot_refuses(model, X, two, "column")
    # one column, or 1-D, is the model's single output
    ax = plot_pit_histogram(model, X, y[:, None], bins=4)
    expected = np.histogram(
        pit(y, model.predict_dist(X)), bins=4, range=(0, 1), density=True
    )[0]
    np.testing.assert_allclose([p.get_height() for p in ax.patches], expected)


def test_pit_of_targets_above_every_component_stays_in_the_plots(model):
    # Regression: such PIT values came out as 1 + an ulp in a few rows (the
    # weights sum to one only to rounding); ax.hist(range=(0, 1)) dropped
    # them, so the top bin of the PIT histogram - where over-confidence
    # shows - lost them, and the calibration curve left [0, 1].
    X, y = make_inverse_sine(400, seed=6)
    y = np.where(np.arange(400) % 2 == 0, y + 100.0, y - 100.0)
    ax = plot_pit_histogram(model, X, y, bins=4)
    # half the rows have PIT 1 (top bin), half PIT 0 (bottom bin)
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, [2.0, 0.0, 0.0, 2.0])
    curve = plot_calibration(model, X, y).get_lines()[1]
    assert np.all((curve.get_xdata() >= 0.0) & (curve.get_xdata() <= 1.0))


def test_plots_say_what_is_wrong_with_a_degenerate_x(model):
    # Regression: one distinct x (a single row of X, or equal values) drew a
    # heat map of zero width, and an empty X failed in a numpy reduction.
    X, _ = make_inverse_sine(40, seed=6)
    for x in ([0.5, 0.5], [0.5], [0.5, np.nan]):
        with pytest.raises(ValueError, match="at least two distinct finite"):
            plot_mixture_means(model, x)
    with pytest.raises(ValueError, match="at least two distinct finite"):
        plot_conditional_density(model, X=X[:1])
    with pytest.raises(ValueError, match="X is empty"):
        plot_conditional_density(model, X=X[:0])


def test_plot_calibration_takes_its_own_drawstyle(model):
    # Regression: drawstyle, a documented ax.plot keyword, was passed twice.
    X, y = make_inverse_sine(40, seed=7)
    ax = plot_calibration(model, X, y, drawstyle="default")
    assert ax.get_lines()[-1].get_drawstyle() == "default"
    assert plot_calibration(model, X, y).get_lines()[-1].get_drawstyle() == (
        "steps-post"
    )


def test_plots_take_a_pipeline_that_ends_in_the_model():
    # Regression: every plot called model.predict_dist, so a Pipeline (which
    # the scorers of skmdn.metrics accept) failed with an AttributeError.
    # Inputs in other units go through the pipeline's scaling step first.
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    X_train, y_train = make_inverse_sine(400, seed=0)
    model = MDNRegressor(
        n_components=3, hidden_layer_sizes=(16,), max_iter=5, random_state=0
    )
    pipe = make_pipeline(FunctionTransformer(lambda X: X / 100.0), model)
    pipe.fit(100.0 * X_train, y_train)
    X, y = make_inverse_sine(60, seed=5)
    dist = model.predict_dist(X)
    reference = _scipy_mixture_cdf(dist, y)
    curve = plot_calibration(pipe, 100.0 * X, y).get_lines()[1]
    np.testing.assert_allclose(curve.get_xdata()[1:-1], np.sort(reference))
    heights = [p.get_height() for p in plot_pit_histogram(pipe, 100.0 * X, y).patches]
    expected = np.histogram(reference, bins=20, range=(0, 1), density=True)[0]
    np.testing.assert_allclose(heights, expected)
    x = np.array([20.0, 50.0, 80.0])
    ax = plot_conditional_density(pipe, x, y_range=(0.0, 1.0), n_points=30)
    d = model.predict_dist(x[:, None] / 100.0)
    grid = np.linspace(0.0, 1.0, 30)
    pdf = np.sum(
        d.weights[1]
        * stats.norm.pdf(grid[:, None], d.means[1, :, 0], d.scales[1, :, 0]),
        axis=1,
    )
    np.testing.assert_allclose(ax.images[0].get_array()[:, 1], pdf, rtol=1e-10)
    weights = plot_mixture_weights(pipe, x).get_lines()[0].get_ydata()
    np.testing.assert_allclose(weights, d.weights[:, 0])
    loss = plot_loss_curve(pipe).get_lines()[0].get_ydata()
    np.testing.assert_allclose(loss, model.loss_curve_)
    with pytest.raises(TypeError, match="StandardScaler has no predict_dist"):
        plot_calibration(StandardScaler().fit(X), X, y)
