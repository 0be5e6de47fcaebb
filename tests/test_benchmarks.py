"""The benchmark scripts measure the code they ship with."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

# Each script is loaded as `python benchmarks/x.py` would load it (its folder,
# not the checkout, first on sys.path), with no skmdn module loaded before.
_PROBE = """
import json, runpy, sys
found, path = {}, list(sys.path)
for script in sys.argv[1:]:
    for name in [m for m in sys.modules if m.split(".")[0] == "skmdn"]:
        del sys.modules[name]
    sys.path[:] = [str(__import__("pathlib").Path(script).parent), *path]
    runpy.run_path(script, run_name="probe")
    found[script] = sys.modules["skmdn"].__file__
print(json.dumps(found))
"""


def test_every_benchmark_imports_the_skmdn_beside_it(tmp_path):
    # Run from another directory: an installed skmdn, or the one of another
    # worktree, must not be the code that gets measured.
    scripts = sorted(str(p) for p in (ROOT / "benchmarks").glob("*.py"))
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *scripts],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    expected = str(ROOT / "skmdn" / "__init__.py")
    assert {Path(s).name: f for s, f in found.items()} == {
        Path(s).name: expected for s in scripts
    }


def test_speed_warns_that_omp_num_threads_caps_only_skmdn(monkeypatch):
    # torch.set_num_threads(2) lifts the baseline above OMP_NUM_THREADS=1,
    # but skmdn keeps the variable as its cap: a thread comparison in such
    # a run is not like for like, and the run must say so.
    import torch

    from skmdn._utils import torch_thread_budget

    saved = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        torch.set_num_threads(2)
        assert torch.get_num_threads() == 2 and torch_thread_budget() == 1
    finally:
        torch.set_num_threads(saved)
    spec = importlib.util.spec_from_file_location(
        "speed", ROOT / "benchmarks" / "speed.py"
    )
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)
    assert "OMP_NUM_THREADS=1 caps skmdn's threads" in speed.omp_note()
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert speed.omp_note() == ""


def _load(name):
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "benchmarks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_inverse_sine_floor_reaches_the_best_mixture_not_a_local_optimum():
    # S(t) at t = 0.519 is three intervals; the best 5-component Gaussian
    # mixture for the uniform law on them, by scikit-learn's EM from three
    # k-means starts, is the reference. EM from the quantile start alone
    # stopped 0.0045 nats above it, which inflated the "floor" of K=5.
    from sklearn.mixture import GaussianMixture

    mm = _load("multimodal")
    points, _ = mm._uniform_quantiles(0.519, 500, (np.arange(20_000) + 0.5) / 2e4)
    reference = min(
        -GaussianMixture(5, tol=1e-9, reg_covar=1e-12, max_iter=2000, random_state=s)
        .fit(points[:, None])
        .score(points[:, None])
        for s in range(3)
    )
    ce, _, unconverged = mm.gmm_cross_entropy(points[None], 5, starts=10)
    assert unconverged == 0
    assert ce[0] == pytest.approx(reference, abs=1e-6)


def test_speed_latency_section_times_every_call_against_mlpregressor():
    # Part of the default run (a few seconds); here with one round.
    import argparse

    speed = _load("speed")
    assert "latency" in speed.SECTIONS.split(",")
    table = speed.section_latency(argparse.Namespace(latency_repeats=1))
    lines = table.splitlines()
    header, *rows = [[c.strip() for c in line.split("|")[1:-1]] for line in lines]
    assert header == ["problem", "call", "rows", "skmdn ms", "MLPRegressor ms", "ratio"]
    rows = rows[1:]  # the rule under the header
    calls = {tuple(r[:3]) for r in rows}
    assert len(calls) == len(rows) == 2 * 12
    for problem in ("sine", "synth10"):
        assert (problem, "partial_fit", "256") in calls
        assert (problem, "fit max_iter=1", "200") in calls
        for n in ("1", "100"):
            for call in ("predict", "predict_dist(X).logpdf(y)", "score", "sample"):
                assert (problem, call, n) in calls
            assert (problem, "predict_interval", n) in calls
    for _, call, _, ours, theirs, ratio in rows:
        assert float(ours) > 0
        if call in ("partial_fit", "fit max_iter=1", "predict"):
            assert float(ratio[:-1]) == pytest.approx(
                float(ours) / float(theirs), rel=0.01, abs=0.01
            )
        else:
            assert theirs == ratio == "-"


def test_inverse_sine_minimax_oracle_fits_each_cv_fold_on_its_own_rows(monkeypatch):
    # The maximum-likelihood band for uniform noise is the minimax fit: its
    # half-width c covers every residual of the rows it was fitted on. The
    # linear programs were cached by (row count, first t), which four of
    # five folds share (row 0 is in one fold only): three folds were scored
    # with another fold's fit, trained on their validation rows.
    refs = _load("inverse_sine_references")
    t, x = refs.mm.make_inverse_sine(100, np.random.default_rng(0))
    t, x = t[:, 0], x
    current, bands = {}, []
    real_cv_select = refs.cv_select

    def cv_select(t_all, x_all, grid, score, seed):
        def watched(ttr, xtr, tva, xva):
            current["rows"] = (ttr, xtr)
            return score(ttr, xtr, tva, xva)

        return real_cv_select(t_all, x_all, grid, watched, seed)

    def band_logpdf(g, c, eps, xg):  # records the band; no 2e5-point grid
        bands.append((g, c, current["rows"]))
        return lambda tq, xq: np.zeros(len(tq))

    monkeypatch.setattr(refs, "cv_select", cv_select)
    monkeypatch.setattr(refs, "band_logpdf", band_logpdf)
    refs.fit_oracle_minimax(t, x, seed=0)
    folds = {id(rows[0]) for _, _, rows in bands}
    assert len(folds) == refs.N_FOLDS
    for g, c, (ttr, xtr) in bands:
        assert np.abs(ttr - g(xtr)).max() <= c * (1 + 1e-7)


# a few epochs on purpose: ConvergenceWarning is expected
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_uci_nll_is_per_point_in_original_units_with_the_jacobian_once():
    # The protocol's NLL is -log p(y | x) in y's own units: the mixture's
    # log-density by scipy, a density that integrates to 1 over y, and
    # y in units c times smaller costs exactly log c more per point (the
    # fit itself is invariant: standardisation divides the scale out).
    from scipy import integrate, stats
    from scipy.special import logsumexp

    from skmdn import MDNRegressor

    uci = _load("uci")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    y = 40_000.0 + 900.0 * (X[:, 0] + 0.3 * rng.normal(size=300))
    X_test, y_test = X[:50] + 0.1, y[:50] + 100.0
    fit = MDNRegressor(max_iter=20, random_state=0).fit(X, y)
    nll, rmse = uci.evaluate(fit, X_test, y_test)
    dist = fit.predict_dist(X_test)
    w, mu = dist.weights, dist.means[..., 0]
    sd = np.sqrt(dist.covariances[..., 0, 0])
    log_p = logsumexp(np.log(w) + stats.norm.logpdf(y_test[:, None], mu, sd), axis=1)
    assert nll == pytest.approx(-log_p.mean(), rel=1e-10)
    assert rmse == pytest.approx(np.sqrt(np.mean(((w * mu).sum(1) - y_test) ** 2)))
    for i in range(3):
        mass = integrate.quad(
            lambda v, i=i: np.sum(w[i] * stats.norm.pdf(v, mu[i], sd[i])),
            (mu[i] - 12 * sd[i]).min(),
            (mu[i] + 12 * sd[i]).max(),
            points=np.sort(mu[i]),
            limit=200,
        )[0]
        assert mass == pytest.approx(1.0, abs=1e-8)
    c = 1000.0
    scaled = MDNRegressor(max_iter=20, random_state=0).fit(X, y / c)
    nll_scaled, _ = uci.evaluate(scaled, X_test, y_test / c)
    assert nll_scaled == pytest.approx(nll - np.log(c), abs=1e-6)


def test_uci_summary_uses_the_standard_error_and_ties_at_published_precision(
    tmp_path,
):
    # mean +- std(ddof=1) / sqrt(n) (scipy's sem); a beat must hold at the
    # published figure's precision: 2.457 against a published 2.46 is a tie
    # (the published mean lies anywhere in [2.455, 2.465)), 2.4549 a beat.
    from scipy import stats

    uci = _load("uci")
    (tmp_path / "published.csv").write_text(
        "dataset,method,metric,mean,pm\n"
        "boston,A,NLL,2.46,0.06\nboston,B,NLL,2.40194,0.04\n"
        "yacht,A,NLL,1.0,0.1\nyacht,B,NLL,1.5,0.1\n"
    )
    for name in ("boston", "yacht"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "n_splits.txt").write_text("3\n")
    values = {"boston": [2.40, 2.45, 2.521], "yacht": [0.3, 0.2, 0.9]}
    rows = [
        {"dataset": d, "row": "default", "split": k, "nll": v, "rmse": 1.0,
         "seconds": 0.1}
        for d, vs in values.items()
        for k, v in enumerate(vs)
    ]  # fmt: skip
    text = uci.summarise(rows, tmp_path)
    for d, vs in values.items():
        cell = f"| {d} | {np.mean(vs):.2f} +- {stats.sem(vs):.2f} (3) |"
        assert cell in text
    assert np.mean(values["boston"]) == pytest.approx(2.457)
    assert "  A: 1 of 2 (yacht); tied: boston" in text
    assert "  B: 1 of 2 (yacht)" in text
    assert "best published NLL of any method: 1 of 2 (yacht)" in text


def test_small_data_truth_is_the_expected_log_density_of_each_problem():
    # The "truth" column of small_data.py is the mean true log-density of
    # the test rows: it must estimate E[log p(y | x)] = -E_x[H(y | x)],
    # computed here by quadrature (closed forms for the Gaussian problems:
    # -log(s sqrt(2 pi)) - 1/2 for standard deviation s).
    from scipy import integrate, stats

    small = _load("small_data")
    const = -0.5 * np.log(2 * np.pi) - 0.5

    def p_log_p(y, x):  # the bimodal problem's p log p at (x, y)
        p = 0.5 * stats.norm.pdf(y, x + 0.5, 0.1) + 0.5 * stats.norm.pdf(
            y, -(x + 0.5), 0.1
        )
        return p * np.log(p) if p > 0 else 0.0

    def minus_entropy(x):  # E[log p(y | x)] for one x
        modes = [-(x + 0.5), x + 0.5]
        return integrate.quad(p_log_p, -3, 3, args=(x,), points=modes, limit=200)[0]

    # x ~ U(-1, 1), density 1/2
    two_modes = 0.5 * integrate.quad(minus_entropy, -1, 1, points=[-0.5])[0]
    expected = {
        "linear": const - np.log(0.3),
        "heteroscedastic": const
        - integrate.quad(lambda x: 0.5 * np.log(0.05 + 0.3 * abs(x)), -1, 1)[0],
        "bimodal": two_modes,
        "near-exact": const - np.log(0.01),
    }
    assert set(expected) == set(small.PROBLEMS)
    for name, value in expected.items():
        _, _, logp = small.problem(name, 400_000, np.random.default_rng(0))
        se = logp.std() / np.sqrt(logp.size)
        assert abs(logp.mean() - value) < 4 * se, (name, logp.mean(), value)


# ----------------------------------------------------------- synthetic.py
def _synthetic_references():
    """Each problem's law written out again, from the module docstring of
    synthetic.py, in another parameterisation than the script's scipy calls:
    (log-density, marginal CDFs, E_x[-H(y | x)] by quadrature or closed
    form), x ~ U(-3, 3) of density 1/6."""
    from scipy import integrate, special

    def e_x(f, points=None):  # E_x[f(x)], x ~ U(-3, 3)
        return integrate.quad(f, -3, 3, points=points, limit=200)[0] / 6

    half_log_2pi = 0.5 * np.log(2 * np.pi)

    def gauss_logpdf(y, m, s):
        return -0.5 * ((y - m) / s) ** 2 - np.log(s) - half_log_2pi

    def gauss_cdf(y, m, s):
        return 0.5 * special.erfc(-(y - m) / (s * np.sqrt(2)))

    # 1. heteroscedastic: N(sin x, (0.05 + 0.3 |x|)^2)
    def het_sd(x):
        return 0.05 + 0.3 * np.abs(x)

    het = (
        lambda x, y: gauss_logpdf(y, np.sin(x), het_sd(x)),
        lambda x, y: gauss_cdf(y, np.sin(x), het_sd(x)),
        -half_log_2pi - 0.5 - e_x(lambda x: np.log(het_sd(x)), points=[0]),
    )

    # 2. skewed: log y ~ N(0.4 x, (0.6 + 0.1 x)^2); H = mu + 1/2 log(2 pi e s^2)
    def ln_sd(x):
        return 0.6 + 0.1 * x

    skewed = (
        lambda x, y: gauss_logpdf(np.log(y), 0.4 * x, ln_sd(x)) - np.log(y),
        lambda x, y: gauss_cdf(np.log(y), 0.4 * x, ln_sd(x)),
        -half_log_2pi - 0.5 - e_x(lambda x: 0.4 * x + np.log(ln_sd(x))),
    )

    # 3. heavy-tailed: sin x + 0.3 T_3; the Student-t's entropy in closed form
    nu, c = 3.0, 0.3

    def t_logpdf(x, y):
        z = (y - np.sin(x)) / c
        return (
            special.gammaln((nu + 1) / 2)
            - special.gammaln(nu / 2)
            - 0.5 * np.log(nu * np.pi)
            - np.log(c)
            - (nu + 1) / 2 * np.log1p(z**2 / nu)
        )

    t_entropy = (
        (nu + 1) / 2 * (special.digamma((nu + 1) / 2) - special.digamma(nu / 2))
        + np.log(np.sqrt(nu) * special.beta(nu / 2, 0.5))
        + np.log(c)
    )
    heavy = (
        t_logpdf,
        lambda x, y: special.stdtr(nu, (y - np.sin(x)) / c),
        -t_entropy,
    )

    # 4. bimodal: sigmoid(1.5 x) N(1.2 + 0.4 x, 0.25^2) + rest N(sin x - 1.2, 0.2^2)
    def bi_pdf(x, y):
        w = 1 / (1 + np.exp(-1.5 * x))
        return w * np.exp(gauss_logpdf(y, 1.2 + 0.4 * x, 0.25)) + (1 - w) * np.exp(
            gauss_logpdf(y, np.sin(x) - 1.2, 0.2)
        )

    def bi_cdf(x, y):
        w = 1 / (1 + np.exp(-1.5 * x))
        return w * gauss_cdf(y, 1.2 + 0.4 * x, 0.25) + (1 - w) * gauss_cdf(
            y, np.sin(x) - 1.2, 0.2
        )

    def bi_p_log_p(y, x):
        p = bi_pdf(x, y)
        return p * np.log(p) if p > 0 else 0.0

    def bi_minus_entropy(x):
        modes = [np.sin(x) - 1.2, 1.2 + 0.4 * x]
        return integrate.quad(bi_p_log_p, -5, 5, args=(x,), points=modes, limit=200)[0]

    bimodal = (
        lambda x, y: np.log(bi_pdf(x, y)),
        bi_cdf,
        e_x(bi_minus_entropy),
    )

    # 5. correlated 2-D: N((sin x, cos x), sds (0.3, 0.2), correlation 0.9 tanh x)
    s1, s2 = 0.3, 0.2

    def corr_logpdf(x, y):
        rho = 0.9 * np.tanh(x)
        z1, z2 = (y[:, 0] - np.sin(x)) / s1, (y[:, 1] - np.cos(x)) / s2
        q = (z1**2 - 2 * rho * z1 * z2 + z2**2) / (1 - rho**2)
        return -np.log(2 * np.pi * s1 * s2 * np.sqrt(1 - rho**2)) - q / 2

    corr = (
        corr_logpdf,
        lambda x, y: np.column_stack(
            [gauss_cdf(y[:, 0], np.sin(x), s1), gauss_cdf(y[:, 1], np.cos(x), s2)]
        ),
        -np.log(2 * np.pi * np.e * s1 * s2)
        - 0.5 * e_x(lambda x: np.log(1 - (0.9 * np.tanh(x)) ** 2)),
    )

    # 6. counts: K negative binomial, mean m = exp(0.7 + 0.5 x), dispersion r = 2,
    # P(k) = Gamma(k + r) / (Gamma(r) k!) (r / (r + m))^r (m / (r + m))^k;
    # y = K + U(0, 1) has density P(floor y) and E[log p(y | x)] = E[log P(K)]
    r = 2.0

    def nb_logpmf(k, x):
        m = np.exp(0.7 + 0.5 * x)
        return (
            special.gammaln(k + r)
            - special.gammaln(r)
            - special.gammaln(k + 1)
            + r * np.log(r / (r + m))
            + k * np.log(m / (r + m))
        )

    ks = np.arange(2000.0)

    def counts_cdf(x, y):
        k = np.floor(y)
        p = np.exp(nb_logpmf(ks[:, None], x))  # (2000, n): summed explicitly
        below = np.where(ks[:, None] < k, p, 0.0).sum(axis=0)
        return below + (y - k) * np.exp(nb_logpmf(k, x))

    def counts_minus_entropy(x):
        log_p = nb_logpmf(ks, x)
        return np.sum(np.exp(log_p) * log_p)

    counts = (
        lambda x, y: nb_logpmf(np.floor(y), x),
        counts_cdf,
        e_x(counts_minus_entropy),
    )
    return {
        "heteroscedastic": het,
        "skewed": skewed,
        "heavy-tailed": heavy,
        "bimodal": bimodal,
        "correlated 2-D": corr,
        "counts": counts,
    }


@pytest.fixture(scope="module")
def synthetic_references():
    return _synthetic_references()


@pytest.mark.parametrize(
    "name",
    [
        "heteroscedastic",
        "skewed",
        "heavy-tailed",
        "bimodal",
        "correlated 2-D",
        "counts",
    ],
)
def test_synthetic_true_nll_and_cdf_match_an_independent_reference(
    name, synthetic_references
):
    # Pointwise, the script's log-density and CDF equal the law written out
    # again in another parameterisation; the script's sampler draws from
    # that law: the mean true log-density of a large sample estimates
    # E_x[-H(y | x)], computed here by quadrature or in closed form (a
    # sampler off the density would score KL(sampler || density) less), and
    # the CDF of the sample (each output's) is uniform.
    from scipy import stats

    syn = _load("synthetic")
    assert set(syn.PROBLEMS) == set(synthetic_references)
    logpdf, cdf, expected = synthetic_references[name]
    problem = syn.PROBLEMS[name]
    X, y = syn.make_data(problem, 200_000, np.random.default_rng(1))
    x = X[:, 0]
    assert X.min() >= -3 and X.max() <= 3
    logp = problem.logpdf(x, y)
    assert np.isfinite(logp).all()
    np.testing.assert_allclose(logp[:2000], logpdf(x[:2000], y[:2000]), rtol=1e-9)
    np.testing.assert_allclose(
        problem.cdf(x[:2000], y[:2000]), cdf(x[:2000], y[:2000]), rtol=1e-9, atol=1e-12
    )
    se = logp.std() / np.sqrt(logp.size)
    assert abs(logp.mean() - expected) < 4 * se, (logp.mean(), expected, se)
    u = problem.cdf(x[:20_000], y[:20_000]).reshape(20_000, -1)
    for column in u.T:
        assert stats.kstest(column, "uniform").pvalue > 1e-3


def test_synthetic_gaussian_baseline_is_the_mlp_with_the_training_residual_variance():
    # Refit MLPRegressor with the same seed; the baseline is N(prediction,
    # mean squared training residual) (the mean of the residuals' products for
    # 2-D y),
    # its interval prediction +- 1.6449 sd.
    import warnings

    from scipy import stats
    from sklearn.neural_network import MLPRegressor

    syn = _load("synthetic")
    rng = np.random.default_rng(0)
    for name in ("heteroscedastic", "correlated 2-D"):
        X, y = syn.make_data(syn.PROBLEMS[name], 300, rng)
        X_test, y_test = syn.make_data(syn.PROBLEMS[name], 400, rng)
        base = syn.gaussian_baseline(X, y, X_test, y_test, seed=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlp = MLPRegressor(random_state=3).fit(X, y)
        res, pred = y - mlp.predict(X), mlp.predict(X_test)
        if y.ndim == 1:
            sd = np.sqrt(np.mean(res**2))
            nll = -stats.norm.logpdf(y_test, pred, sd)
            inside = np.abs(y_test - pred) <= 1.6449 * sd
            z = (y_test - pred) / sd
        else:
            c = np.einsum("ni,nj->ij", res, res) / len(res)
            r = y_test - pred
            det = c[0, 0] * c[1, 1] - c[0, 1] ** 2
            q = (c[1, 1] * r[:, 0] ** 2 - 2 * c[0, 1] * r[:, 0] * r[:, 1]
                 + c[0, 0] * r[:, 1] ** 2) / det  # fmt: skip
            nll = np.log(2 * np.pi) + 0.5 * np.log(det) + q / 2
            inside = np.abs(r) <= 1.6449 * np.sqrt(np.diag(c))
            z = r / np.sqrt(np.diag(c))
        np.testing.assert_allclose(base["nll"], nll, rtol=1e-9)
        assert base["coverage"][0] == pytest.approx(inside.mean())
        np.testing.assert_allclose(base["pit"].ravel(), stats.norm.cdf(z).ravel())


def test_synthetic_pit_deviation_and_its_chance_level():
    # Exactly uniform counts deviate by 0, everything in one of 10 bins by
    # (9 + 9 x 1) / 10; uniform draws by about 0.8 sqrt(9 / n) (the mean
    # absolute value of a bin's binomial noise, E|N(0, s)| = s sqrt(2 / pi)),
    # the floor the docstring quotes.
    syn = _load("synthetic")
    assert syn.pit_deviation((np.arange(1000) + 0.5) / 1000) == pytest.approx(0.0)
    assert syn.pit_deviation(np.full(50, 0.55)) == pytest.approx(1.8)
    both = np.column_stack([(np.arange(1000) + 0.5) / 1000, np.full(1000, 0.55)])
    assert syn.pit_deviation(both) == pytest.approx(0.9)
    rng = np.random.default_rng(0)
    draws = [syn.pit_deviation(rng.random(2000)) for _ in range(400)]
    assert np.mean(draws) == pytest.approx(
        np.sqrt(2 / np.pi) * np.sqrt(9 / 2000), rel=0.05
    )


def test_synthetic_coverage_by_bins_of_x_and_its_chance_level():
    # Rows in the bins [-3, -2.4), ..., [2.4, 3] of x; the worst bin is the
    # one whose share inside is farthest from 0.9, either side. The chance
    # level is E[max of 10 |B / m - 0.9|], B ~ Binomial(m, 0.9) independent:
    # exactly, from P(max <= t) = P(|B / m - 0.9| <= t)^10.
    from scipy import stats

    syn = _load("synthetic")
    x = np.repeat(np.linspace(-2.7, 2.7, 10), 10)  # 10 rows in each bin
    y = np.zeros(100)
    interval = np.tile([-1.0, 1.0], (100, 1))
    interval[:3, 0] = 0.5  # bin 0: 7 of 10 inside
    interval[95:, 1] = -0.5  # bin 9: 5 of 10 inside
    cover, worst = syn.coverage(x, y, interval)
    assert cover == pytest.approx(0.92)
    assert worst == pytest.approx(0.4)
    y2 = np.column_stack([y, np.where(np.arange(100) < 50, 9.0, 0.0)])
    cover, worst = syn.coverage(x, y2, np.stack([interval, interval], axis=1))
    assert cover == pytest.approx((92 + 45) / 200)  # rows 95-99 out in both
    assert worst == pytest.approx(0.9 - 0.5 * 0.7)  # bin 0, one output all out
    m = 200
    errors = np.abs(np.arange(m + 1) / m - 0.9)
    t = np.unique(errors)
    p_le = np.array([stats.binom.pmf(np.arange(m + 1), m, 0.9)[errors <= v].sum()
                     for v in t])  # fmt: skip
    cdf_max = p_le**10
    expected = np.sum(t * np.diff(np.concatenate([[0.0], cdf_max])))
    assert syn.chance_bin_error(10 * m) == pytest.approx(expected, rel=0.03)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_synthetic_runs_end_to_end_on_a_tiny_configuration(capsys):
    syn = _load("synthetic")
    syn.main(["--seeds", "0,1", "--n-train", "150", "--n-test", "300",
              "--params", '{"max_iter": 3}'])  # fmt: skip
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("| ")]
    header, *rows = [[c.strip() for c in line.split("|")[1:-1]] for line in table]
    assert header[:5] == ["problem", "noise_type", "true NLL", "model NLL", "excess"]
    assert [r[:2] for r in rows] == [
        ["heteroscedastic", "diagonal"],
        ["skewed", "diagonal"],
        ["heavy-tailed", "diagonal"],
        ["bimodal", "diagonal"],
        ["correlated 2-D", "diagonal"],
        ["correlated 2-D", "full"],
        ["counts", "diagonal"],
    ]
    for row in rows:
        true, model, excess = (float(c.split()[0]) for c in row[2:5])
        # the excess is a paired mean: the difference of the two means
        assert excess == pytest.approx(model - true, abs=2e-3)
        for cell in row[6:9]:
            assert all(0 <= float(v) <= 2 for v in cell.split(" / "))
    assert "counts: excess of the model's count probabilities" in out
