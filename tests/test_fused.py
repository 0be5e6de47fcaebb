"""The compiled mixture loss and row gather (``skmdn._cmixture``) against
torch's kernels."""

from __future__ import annotations

import collections
import os
import threading

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm

from skmdn import MDNRegressor, _fused
from skmdn._mixture import (
    diagonal_nll_backward,
    diagonal_nll_forward,
    full_nll_backward,
    full_nll_forward,
)
from skmdn._network import _n_scale_outputs

KINDS = list(_fused.KINDS)

# CI builds the extension and sets this, so that a build that silently fell
# back to torch (setup.py's extension is optional) fails there.
REQUIRED = os.environ.get("SKMDN_REQUIRE_CMIXTURE") == "1"

needs_kernel = pytest.mark.skipif(
    _fused._cmixture is None and not REQUIRED,
    reason="skmdn._cmixture was not built (no C compiler at install)",
)


def test_the_extension_is_built_where_required():
    if not REQUIRED:
        pytest.skip("SKMDN_REQUIRE_CMIXTURE is not set")
    assert _fused._cmixture is not None, "setup.py did not build skmdn._cmixture"
    assert _fused.available()


def _case(kind, K, d, n, dtype, seed=0):
    """Head outputs that reach every branch: logits spread past the e^-60
    drop, raw scales from the floor (softplus of -60) to softplus's linear
    branch (above 20), targets from near to far; random weights summing to 1."""
    g = torch.Generator().manual_seed(seed)
    rows = K + K * d + _n_scale_outputs(kind, K, d)
    out = torch.randn(rows, n, generator=g, dtype=torch.float64)
    out[:K] *= 30.0
    out[K : K + K * d] *= 3.0
    raw = out[K + K * d :]
    if len(raw):
        raw.mul_(4.0)
        raw[:, : n // 10] = 25.0 + raw[:, : n // 10].abs()
        raw[:, n // 10 : n // 5] = -60.0
    y = 3.0 * torch.randn(d, n, generator=g, dtype=torch.float64)
    w = torch.rand(n, generator=g, dtype=torch.float64)
    fixed = torch.tensor([0.7], dtype=torch.float64) if kind == "fixed" else None
    return out.to(dtype), y.to(dtype), (w / w.sum()).to(dtype), fixed


def _torch_reference(out, y, w, K, kind, fixed, min_scale=1e-3, cw=1.0):
    d, n = y.shape
    raw = out[K + K * d :]
    shape = {"diagonal": (K, d), "isotropic": (K, 1), "isotropic_across": (1, 1)}
    raw = raw.reshape(*shape[kind], n) if kind in shape else None
    means = out[K : K + K * d].reshape(K, d, n)
    loss, saved = diagonal_nll_forward(out[:K], means, raw, y, w, min_scale, fixed, cw)
    g_logits, g_means, g_raw = diagonal_nll_backward(saved, 1.0)
    parts = [g_logits, g_means.reshape(K * d, n)]
    if g_raw is not None:
        parts.append(g_raw.reshape(-1, n))
    return loss, torch.cat(parts)


def _compiled(out, y, w, K, kind, fixed, min_scale=1e-3, cw=1.0):
    grad = torch.full_like(out, 123.0)  # every entry must be written
    loss = _fused.diagonal_nll(out, y, w, grad, K, kind, min_scale, fixed, cw)
    assert loss is not None
    return loss, grad


def _assert_matches(got_loss, got, want_loss, want, dtype):
    """The compiled loss and gradient against torch's: the loss a scalar of
    ``dtype`` to ``tol``, each gradient to ``10 tol`` of the largest entry of
    its row, and the dropped terms exact zeros on both sides."""
    assert got_loss.dtype == dtype and got_loss.shape == ()
    tol = {torch.float32: 3e-6, torch.float64: 1e-13}[dtype]
    torch.testing.assert_close(got_loss, want_loss, rtol=tol, atol=0.0)
    scale = want.abs().amax(1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
    assert ((got - want).abs() / scale).max() < 10 * tol
    assert torch.equal(got == 0, want == 0)  # no subnormals either side


@needs_kernel
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("K", "d", "n"), [(1, 1, 7), (5, 2, 1000), (3, 3, 1301)])
def test_loss_and_gradient_match_torch(kind, dtype, K, d, n):
    out, y, w, fixed = _case(kind, K, d, n, dtype)
    want_loss, want = _torch_reference(out, y, w, K, kind, fixed)
    got_loss, got = _compiled(out, y, w, K, kind, fixed)
    _assert_matches(got_loss, got, want_loss, want, dtype)


@needs_kernel
@pytest.mark.parametrize("kind", KINDS)
def test_loss_is_the_mixture_nll_by_scipy(kind):
    """The loss against an independent reference: ``-sum_i w_i log sum_k
    pi_k prod_j N(y_j; mu_kj, s_kj)`` with scipy's normal density and
    logsumexp, the scales ``log1p(e^raw) + min_scale``."""
    K, d, n, min_scale = 3, 2, 200, 1e-3
    out, y, w, fixed = _case(kind, K, d, n, torch.float64, seed=5)
    o = out.numpy()
    log_pi = o[:K] - logsumexp(o[:K], axis=0)
    means = o[K : K + K * d].reshape(K, d, n)
    raw = o[K + K * d :]
    if kind == "fixed":
        scales = np.full((K, d, n), fixed.item())
    else:
        shape = {"diagonal": (K, d), "isotropic": (K, 1), "isotropic_across": (1, 1)}
        soft = np.logaddexp(0.0, raw).reshape(*shape[kind], n) + min_scale
        scales = np.broadcast_to(soft, (K, d, n))
    log_comp = log_pi + norm.logpdf(y.numpy(), means, scales).sum(1)
    want = -(w.numpy() * logsumexp(log_comp, axis=0)).sum()
    got, _ = _compiled(out, y, w, K, kind, fixed, min_scale)
    assert float(got) == pytest.approx(want, rel=1e-12)


@needs_kernel
def test_many_components_use_smaller_tiles_with_the_same_result():
    """K = 40, d = 3: the scratch arrays need more rows per tile, so the
    kernel takes fewer rows per tile; the result does not change."""
    out, y, w, _ = _case("diagonal", 40, 3, 2049, torch.float64, seed=3)
    want_loss, want = _torch_reference(out, y, w, 40, "diagonal", None)
    got_loss, got = _compiled(out, y, w, 40, "diagonal", None)
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-13, atol=0.0)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-15)


@needs_kernel
def test_constant_weight_and_min_scale_are_used():
    out, y, w, _ = _case("isotropic", 4, 2, 300, torch.float64)
    for min_scale, cw in [(0.5, 0.0), (1e-3, 2.5)]:
        want_loss, want = _torch_reference(
            out, y, w, 4, "isotropic", None, min_scale, cw
        )
        got_loss, got = _compiled(out, y, w, 4, "isotropic", None, min_scale, cw)
        torch.testing.assert_close(got_loss, want_loss, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-15)


@needs_kernel
@pytest.mark.parametrize("where", ["logit", "mean", "raw", "y"])
def test_nan_reaches_the_loss(where):
    """A NaN anywhere in a row makes the loss NaN, as with torch's kernels
    (the fit then stops with its non-finite-loss error)."""
    K, d = 3, 2
    out, y, w, _ = _case("diagonal", K, d, 50, torch.float32)
    target = {"logit": out[1], "mean": out[K + 1], "raw": out[-1], "y": y[0]}[where]
    target[17] = float("nan")
    want_loss, _ = _torch_reference(out, y, w, K, "diagonal", None)
    got_loss, got = _compiled(out, y, w, K, "diagonal", None)
    assert torch.isnan(want_loss) and torch.isnan(got_loss)
    assert torch.isfinite(got[:, :17]).all()  # other rows keep their gradients


@needs_kernel
def test_threads_at_once_get_their_own_results():
    """The kernel releases the GIL and keeps its scratch per call: four
    threads at once give the bits of the calls made one after another."""
    cases = [_case("diagonal", 5, 2, 4096, torch.float32, seed=s) for s in range(4)]
    alone = [_compiled(*c[:3], 5, "diagonal", None) for c in cases]
    results = [None] * 4

    def run(i):
        for _ in range(20):
            results[i] = _compiled(*cases[i][:3], 5, "diagonal", None)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (loss, grad), (loss1, grad1) in zip(results, alone, strict=True):
        assert torch.equal(loss, loss1) and torch.equal(grad, grad1)


def test_declines_what_it_does_not_compute(monkeypatch):
    out, y, w, _ = _case("diagonal", 2, 1, 10, torch.float64)
    grad = torch.empty_like(out)
    args = (2, "diagonal", 1e-3)
    assert _fused.diagonal_nll(out, y, w, grad, 2, "full", 1e-3) is None
    half = [t.half() for t in (out, y, w, grad)]
    assert _fused.diagonal_nll(*half, *args) is None
    monkeypatch.setattr(_fused, "ENABLED", False)
    assert not _fused.available()
    assert _fused.diagonal_nll(out, y, w, grad, *args) is None


@needs_kernel
def test_refuses_tensors_it_cannot_read_safely():
    out, y, w, _ = _case("diagonal", 2, 2, 10, torch.float64)
    grad = torch.empty_like(out)
    args = (2, "diagonal", 1e-3)
    with pytest.raises(ValueError, match="y must be a contiguous"):
        _fused.diagonal_nll(out, y.t().contiguous().t(), w, grad, *args)
    with pytest.raises(ValueError, match=r"grad must be .* shape \(10, 10\)"):
        _fused.diagonal_nll(out, y, w, grad[:5], *args)
    with pytest.raises(
        ValueError, match=r"weights must be a contiguous torch\.float64"
    ):
        _fused.diagonal_nll(out, y, w.float(), grad, *args)


class _Counting:
    """Stands in for the extension module, counting its calls by name."""

    def __init__(self, module):
        self.module, self.counts = module, collections.Counter()

    def __getattr__(self, name):
        def call(*args):
            self.counts[name] += 1
            return getattr(self.module, name)(*args)

        return call


@needs_kernel
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("block", [True, False])
def test_a_fit_follows_the_torch_fit(monkeypatch, block):
    """Whole float64 fits with the compiled block (or the compiled loss
    alone) and with torch's kernels: the same training to rounding, so the
    same loss curve to about 1e-9."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (400, 2))
    y = np.sin(3 * X[:, :1]) + 0.1 * rng.standard_normal((400, 1))
    kw = dict(max_iter=15, random_state=0, early_stopping=False)
    counting = _Counting(_fused._cmixture)
    monkeypatch.setattr(_fused, "BLOCKS", block)
    if block and not _fused.blas_available():
        pytest.skip("torch's BLAS was not found (the block is not compiled)")
    monkeypatch.setattr(_fused, "_cmixture", counting)
    compiled = MDNRegressor(**kw).fit(X, y)
    calls_before = dict(counting.counts)
    if block:  # every training step was one compiled call
        assert calls_before["mlp_block"] >= 15
        assert "diag_nll" not in calls_before
    else:  # every training step went through the loss and gathered its rows
        assert calls_before["diag_nll"] >= 15
        assert calls_before["gather_rows"] == calls_before["diag_nll"]
    monkeypatch.setattr(_fused, "ENABLED", False)
    plain = MDNRegressor(**kw).fit(X, y)
    np.testing.assert_allclose(compiled.loss_curve_, plain.loss_curve_, rtol=1e-9)
    np.testing.assert_allclose(compiled.predict(X), plain.predict(X), rtol=1e-7)
    assert counting.counts == calls_before


def _full_case(K, d, n, dtype, seed=0, extremes=True):
    """Head outputs of ``noise_type='full'``: logits spread past the drop;
    with ``extremes``, Cholesky diagonals from the floor (raw -30) past
    softplus's threshold (raw 25); off-diagonal entries small; targets near
    the means; random weights summing to 1."""
    g = torch.Generator().manual_seed(seed)
    tri = d * (d + 1) // 2
    out = torch.randn(K + K * d + K * tri, n, generator=g, dtype=torch.float64)
    out[:K] *= 30.0
    raw = out[K + K * d :].view(K, tri, n)
    raw.mul_(0.3)
    for a in range(d):
        on = a * (a + 1) // 2 + a
        raw[:, on] = 2.0 * torch.randn(K, n, generator=g, dtype=torch.float64)
        if extremes:
            raw[:, on, : n // 10] = 25.0
            raw[:, on, n // 10 : n // 5] = -30.0
    y = out[K : K + d] + 0.5 * torch.randn(d, n, generator=g, dtype=torch.float64)
    w = torch.rand(n, generator=g, dtype=torch.float64)
    return out.to(dtype), y.to(dtype), (w / w.sum()).to(dtype)


def _full_reference(out, y, w, K, min_scale=1e-3, cw=1.0):
    d, n = y.shape
    means = out[K : K + K * d].reshape(K, d, n)
    raw = out[K + K * d :].reshape(K, -1, n)
    loss, saved = full_nll_forward(out[:K], means, raw, y, w, min_scale, cw)
    g_logits, g_means, g_raw = full_nll_backward(saved, 1.0)
    return loss, torch.cat([g_logits, g_means.reshape(K * d, n), g_raw.reshape(-1, n)])


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("K", "d", "n"), [(1, 1, 7), (5, 2, 1000), (3, 3, 1301), (2, 5, 300)]
)
def test_full_loss_and_gradient_match_torch(dtype, K, d, n):
    out, y, w = _full_case(K, d, n, dtype)
    want_loss, want = _full_reference(out, y, w, K)
    grad = torch.full_like(out, 123.0)
    got_loss = _fused.full_nll(out, y, w, grad, K, 1e-3, 1.0)
    _assert_matches(got_loss, grad, want_loss, want, dtype)


@needs_kernel
def test_full_loss_is_the_mixture_nll_by_scipy():
    """Against scipy's multivariate normal with ``cov = L L^T``, the
    Cholesky factor built from the raw triangle as documented."""
    K, d, n, min_scale, cw = 3, 3, 60, 1e-3, 0.5
    out, y, w = _full_case(K, d, n, torch.float64, seed=7, extremes=False)
    o, yy = out.numpy(), y.numpy()
    log_pi = o[:K] - logsumexp(o[:K], axis=0)
    means = o[K : K + K * d].reshape(K, d, n)
    raw = o[K + K * d :].reshape(K, -1, n)
    rows, cols = np.tril_indices(d)
    ll = np.empty(n)
    for i in range(n):
        comp = np.empty(K)
        for k in range(K):
            L = np.zeros((d, d))
            L[rows, cols] = raw[k, :, i]
            L[np.diag_indices(d)] = np.logaddexp(0.0, np.diag(L)) + min_scale
            comp[k] = log_pi[k, i] + multivariate_normal.logpdf(
                yy[:, i], means[k, :, i], L @ L.T
            )
        ll[i] = logsumexp(comp)
    # the kernel counts the 2 pi constant constant_weight times
    want = -(w.numpy() * ll).sum() - (1.0 - cw) * 0.5 * d * np.log(2 * np.pi)
    got = _fused.full_nll(out, y, w, torch.empty_like(out), K, min_scale, cw)
    assert float(got) == pytest.approx(want, rel=1e-10)


def test_full_declines_where_it_does_not_apply(monkeypatch):
    out, y, w = _full_case(2, 2, 10, torch.float64)
    grad = torch.empty_like(out)
    half = [t.half() for t in (out, y, w, grad)]
    assert _fused.full_nll(*half, 2, 1e-3) is None
    monkeypatch.setattr(_fused, "ENABLED", False)
    assert _fused.full_nll(out, y, w, grad, 2, 1e-3) is None


@needs_kernel
def test_full_refuses_a_head_of_the_wrong_size():
    out, y, w = _full_case(2, 2, 10, torch.float64)
    with pytest.raises(ValueError, match=r"full_nll: out must be .* shape \(12, 10\)"):
        _fused.full_nll(out[:-1], y, w, torch.empty_like(out[:-1]), 2, 1e-3)


def _packed(N, F, d, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, F + d + 1, generator=g, dtype=torch.float64).to(dtype)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("with_index", [False, True])
@pytest.mark.parametrize(
    ("F", "rows"), [(1, slice(0, 1)), (10, slice(5, 22)), (3, slice(40, 300))]
)
def test_gather_rows_is_the_torch_gather_transposed(dtype, with_index, F, rows):
    """The rows (slices from 1 row to more than the prefetch distance, in
    the data's order or shuffled), transposed, to the bit."""
    d, N = 2, 500
    packed = _packed(N, F, d, dtype)
    index = torch.randperm(N, generator=torch.Generator().manual_seed(1))
    index = index if with_index else None
    part = packed[rows] if index is None else packed[index[rows]]
    n = len(part)
    x_t, rest_t = (
        torch.full((F, n), np.nan, dtype=dtype),
        torch.empty(d + 1, n, dtype=dtype),
    )
    assert _fused.gather_rows(packed, index, rows, x_t, rest_t)
    assert torch.equal(x_t, part[:, :F].t())
    assert torch.equal(rest_t, part[:, F:].t())


@needs_kernel
@pytest.mark.parametrize("bad", [-1, 500])
def test_gather_rows_refuses_an_index_outside_the_data(bad):
    packed = _packed(500, 2, 1, torch.float64)
    index = torch.arange(40)
    index[30] = bad
    x_t, rest_t = (
        torch.empty(2, 40, dtype=torch.float64),
        torch.empty(2, 40, dtype=torch.float64),
    )
    with pytest.raises(IndexError, match="row 30 of the block is outside the 500 rows"):
        _fused.gather_rows(packed, index, slice(0, 40), x_t, rest_t)


@needs_kernel
def test_gather_rows_refuses_tensors_it_cannot_read_safely():
    packed = _packed(50, 2, 1, torch.float32)
    index = torch.arange(50)
    x_t, rest_t = torch.empty(2, 10), torch.empty(2, 10)
    cases = [
        ((packed, index.int(), slice(0, 10), x_t, rest_t), "index a 1-D int64 tensor"),
        (
            (packed, index[::2], slice(0, 10), x_t, rest_t),
            "index a 1-D int64 tensor of stride 1",
        ),
        ((packed, index, slice(0, 20, 2), x_t, rest_t), "slice of step 1"),
        (
            (packed, index, slice(0, 10), torch.empty(10, 2).t(), rest_t),
            r"x_t must be a contiguous torch\.float32 tensor of shape \(2, 10\)",
        ),
        (
            (packed, index, slice(0, 10), x_t, torch.empty(3, 10)),
            r"rest_t must be .* shape \(2, 10\)",
        ),
        (
            (packed, index, slice(0, 10), x_t.double(), rest_t),
            r"x_t must be a contiguous torch\.float32",
        ),
        (
            (packed[:, :3], index, slice(0, 10), x_t, torch.empty(1, 10)),
            "packed must be a contiguous",
        ),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            _fused.gather_rows(*args)


def test_gather_rows_declines_what_it_does_not_copy(monkeypatch):
    packed = _packed(50, 2, 1, torch.float16)
    x_t, rest_t = (
        torch.zeros(2, 10, dtype=torch.float16),
        torch.zeros(2, 10, dtype=torch.float16),
    )
    assert not _fused.gather_rows(packed, None, slice(0, 10), x_t, rest_t)
    monkeypatch.setattr(_fused, "ENABLED", False)
    packed, x_t, rest_t = packed.float(), x_t.float(), rest_t.float()
    assert not _fused.gather_rows(packed, None, slice(0, 10), x_t, rest_t)
    assert not x_t.any() and not rest_t.any()  # nothing written


def test_a_block_refuses_rows_of_another_width():
    from skmdn._backprop import ManualBackprop
    from skmdn._network import MDNNetwork

    net = MDNNetwork(3, 1, 2, (4,), "tanh", "diagonal", 1e-3).double()
    packed = _packed(20, 2, 1, torch.float64)  # 2 features, not 3
    with pytest.raises(ValueError, match="takes 3 features, not 2"):
        ManualBackprop(net).rows(packed, None, slice(0, 20), 2, 20)


def _adam_state(n, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    flat, grad = (torch.randn(n, generator=g, dtype=dtype) for _ in range(2))
    decay = torch.where(torch.arange(n) % 3 == 0, 0.0, 0.05).to(dtype)
    return flat, grad, decay, torch.zeros(n, dtype=dtype), torch.zeros(n, dtype=dtype)


@needs_kernel
@pytest.mark.parametrize(
    ("dtype", "rtol"), [(torch.float64, 1e-13), (torch.float32, 1e-5)]
)
def test_adam_step_is_torch_adam(dtype, rtol):
    """25 updates through the compiled pass and through torch.optim.Adam
    (weight decay on two thirds of the entries, the gradient changing each
    step): the same parameters and moments to rounding."""
    flat, grad, decay, m, v = _adam_state(1001, dtype)
    param = torch.nn.Parameter(flat.clone())
    torch_adam = torch.optim.Adam([param], lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    g = torch.Generator().manual_seed(5)
    for t in range(1, 26):
        grad.normal_(generator=g)
        param.grad = grad + decay * param.detach()  # L2 decay as FlatAdam adds it
        torch_adam.step()
        assert _fused.adam_step(
            flat,
            grad,
            decay,
            m,
            v,
            (0.9, 0.999),
            (1 - 0.999**t) ** 0.5,
            0.01 / (1 - 0.9**t),
            1e-8,
        )
    state = torch_adam.state[param]
    torch.testing.assert_close(flat, param.detach(), rtol=rtol, atol=rtol * 1e-3)
    torch.testing.assert_close(m, state["exp_avg"], rtol=rtol, atol=rtol * 1e-3)
    torch.testing.assert_close(v, state["exp_avg_sq"], rtol=rtol, atol=rtol * 1e-3)


@needs_kernel
def test_adam_step_refuses_tensors_unlike_the_parameters():
    flat, grad, decay, m, v = _adam_state(10, torch.float64)
    args = ((0.9, 0.999), 0.1, 0.01, 1e-8)
    for bad, message in [
        (
            (flat, grad.float(), decay, m, v),
            r"grad must be a contiguous torch\.float64",
        ),
        ((flat, grad, decay[:9], m, v), r"decay must be .* shape \(10,\)"),
        (
            (flat, grad, decay, torch.zeros(20, dtype=torch.float64)[::2], v),
            "exp_avg must",
        ),
    ]:
        with pytest.raises(ValueError, match=message):
            _fused.adam_step(*bad, *args)


def test_adam_step_declines_what_it_does_not_update(monkeypatch):
    flat, grad, decay, m, v = _adam_state(10, torch.float64)
    before = flat.clone()
    half = [t.half() for t in (flat, grad, decay, m, v)]
    assert not _fused.adam_step(*half, (0.9, 0.999), 0.1, 0.01, 1e-8)
    monkeypatch.setattr(_fused, "ENABLED", False)
    assert not _fused.adam_step(flat, grad, decay, m, v, (0.9, 0.999), 0.1, 0.01, 1e-8)
    assert torch.equal(flat, before) and not m.any() and not v.any()


@needs_kernel
@pytest.mark.parametrize("src_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("with_rows", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pack_columns_gives_the_bits_of_the_torch_packing(
    src_dtype, order, with_rows, dtype, monkeypatch
):
    """pack_rows through the compiled pass and through torch's chunked
    operations (over more than one chunk, values from 1e-30 to 1e30): the
    same packed rows to the bit; and both are (a - mean) / scale in float64
    rounded once."""
    from skmdn import _data

    monkeypatch.setattr(_data, "CHUNK_ROWS", 64)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)) * 10.0 ** rng.integers(-30, 30, (300, 4))
    X = np.asarray(X.astype(src_dtype), order=order)
    Y = rng.normal(size=(300, 2))
    w = rng.uniform(0.5, 2.0, 300)
    columns = [
        (X, X.mean(0, dtype=np.float64), X.std(0, dtype=np.float64) + 1.0),
        (Y, np.array([0.1, -0.2]), np.array([3.0, 0.7])),
        (w.reshape(-1, 1), np.zeros(1), np.full(1, w.mean())),
    ]
    rows = np.sort(rng.choice(300, 250, replace=False)) if with_rows else None
    compiled = _data.pack_rows(rows, columns, dtype)
    monkeypatch.setattr(_fused, "ENABLED", False)
    plain = _data.pack_rows(rows, columns, dtype)
    assert torch.equal(compiled, plain)
    pick = slice(None) if rows is None else rows
    want = np.hstack([(a[pick].astype(np.float64) - m) / s for a, m, s in columns])
    np.testing.assert_array_equal(compiled.numpy(), want.astype(compiled.numpy().dtype))


@needs_kernel
def test_pack_columns_refuses_what_does_not_fit():
    src = torch.randn(20, 3, dtype=torch.float64)
    mean, scale = (
        torch.zeros(3, dtype=torch.float64),
        torch.ones(3, dtype=torch.float64),
    )
    out = torch.empty(20, 5)
    index = torch.arange(20)
    with pytest.raises(IndexError, match="row 7 is outside the 20 rows"):
        bad = index.clone()
        bad[7] = 20
        _fused.pack_columns(src, bad, mean, scale, out[:, :3])
    for args, name in [
        ((src, None, mean[:2], scale, out[:, :3]), "mean"),
        ((src, None, mean, scale[::2], out[:, :3]), "scale"),
        ((src, None, mean, scale, out[:, :2]), "out"),
        ((src, None, mean, scale, torch.empty(3, 20).t()), "out"),
        ((src, index.int(), mean, scale, out[:, :3]), "index"),
    ]:
        with pytest.raises(ValueError, match=f"pack_columns: {name} does not fit"):
            _fused.pack_columns(*args)


def test_pack_columns_declines_what_it_does_not_pack(monkeypatch):
    src = torch.randn(20, 3, dtype=torch.float64)
    mean, scale = (
        torch.zeros(3, dtype=torch.float64),
        torch.ones(3, dtype=torch.float64),
    )
    out = torch.zeros(20, 3)
    assert not _fused.pack_columns(src.half(), None, mean, scale, out)
    assert not _fused.pack_columns(src, None, mean.float(), scale.float(), out)
    monkeypatch.setattr(_fused, "ENABLED", False)
    assert not _fused.pack_columns(src, None, mean, scale, out)
    assert not out.any()
