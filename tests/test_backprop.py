"""``ManualBackprop`` (hand-written training step) against autograd."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from torch.nn import functional as F

from skmdn import MDNRegressor, _fused, _kernels
from skmdn import _training as training
from skmdn._backprop import BlockedBackprop, ManualBackprop
from skmdn._mixture import full_nll_backward, full_nll_forward, mixture_log_prob
from skmdn._network import MDNNetwork
from skmdn._training import AutogradStep, FlatAdam, batch_loss

DIAGONAL_TYPES = ["diagonal", "isotropic", "isotropic_across", "fixed"]


@pytest.fixture(autouse=True, params=["compiled block", "compiled loss", "torch loss"])
def loss_kernel(request, monkeypatch):
    """Every test here runs with the whole block compiled (``skmdn._fused``'s
    ``mlp_block``, where it applies: tanh, relu and identity networks), with
    only the mixture loss compiled, and with torch's kernels."""
    compiled = request.param != "torch loss"
    if compiled and _fused._cmixture is None:
        pytest.skip("skmdn._cmixture was not built")
    if request.param == "compiled block" and not _fused.blas_available():
        pytest.skip("torch's BLAS was not found (the block is not compiled)")
    monkeypatch.setattr(_fused, "ENABLED", compiled)
    monkeypatch.setattr(_fused, "BLOCKS", request.param == "compiled block")


def _network(noise_type, activation="tanh", hidden=(8, 5), dtype=torch.float64):
    net = MDNNetwork(4, 3, 4, hidden, activation, noise_type, 1e-3, (0.5,) * 3)
    net.reset_parameters(torch.Generator().manual_seed(0))
    with torch.no_grad():  # a non-trivial head, not the near-zero init
        net.head.weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(1))
    return net.to(dtype)


def _batch(n, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g, dtype=dtype)
    y = 2.0 * torch.randn(n, 3, generator=g, dtype=dtype)
    w = torch.rand(n, generator=g, dtype=dtype)
    return x, y, w / w.sum()


def _autograd(net, x, y, w):
    for p in net.parameters():
        p.grad = None
    loss = batch_loss(net, x, y, w)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in net.parameters()]


def _step_grads(net, step_type, x, y, w):
    """The loss and gradients of one ``step_type`` step (ManualBackprop or
    AutogradStep) on the batch, written into FlatAdam's buffer."""
    opt = FlatAdam(net, 1e-3, 0.0)  # binds every .grad to its flat buffer
    opt.grad.fill_(123.0)  # stale values must be overwritten, not added to
    try:
        loss = step_type(net)(x, y, w)
        return loss, [p.grad.clone() for p in net.parameters()]
    finally:
        opt.release()


def _manual(net, x, y, w):
    return _step_grads(net, ManualBackprop, x, y, w)


@pytest.mark.parametrize("noise_type", DIAGONAL_TYPES)
@pytest.mark.parametrize("activation", ["tanh", "logistic", "relu", "identity"])
@pytest.mark.parametrize("hidden", [(), (8,), (8, 5)])
@pytest.mark.parametrize("tanh_form", _kernels.FORMS, indirect=True)
def test_loss_and_gradients_match_autograd(noise_type, activation, hidden, tanh_form):
    _assert_matches_autograd(_network(noise_type, activation, hidden), *_batch(12))


@pytest.mark.parametrize("tanh_form", _kernels.FORMS, indirect=True)
def test_float32_matches_autograd(tanh_form):
    net = _network("diagonal", dtype=torch.float32)
    x, y, w = _batch(300, dtype=torch.float32)
    _assert_matches_autograd(net, x, y, w, rtol=(1e-5, 1e-4), atol=1e-6)


def _assert_matches_autograd(net, x, y, w, rtol=(1e-12, 1e-10), atol=1e-12):
    """Loss and gradients against autograd; ``rtol`` is (loss, gradients)."""
    want_loss, want = _autograd(net, x, y, w)
    got_loss, got = _manual(net, x, y, w)
    torch.testing.assert_close(got_loss, want_loss, rtol=rtol[0], atol=atol)
    for g, ref in zip(got, want, strict=True):
        torch.testing.assert_close(g, ref, rtol=rtol[1], atol=atol)


def _full_network(d, K, hidden, dtype=torch.float64):
    """A 'full' network whose Cholesky diagonals span the scale floor
    (softplus(raw) far below min_scale) to softplus's linear branch (raw
    above 20).

    Without hidden layers the head is the identity, so that both steps see
    the same head outputs bit for bit (:func:`_full_batch` draws them as x).
    With hidden layers the head's raw diagonal entries are ``40 h_0 - 15``
    for the last hidden unit ``h_0`` and its off-diagonal ones small. Either
    way the correlations stay away from 1: with off-diagonal entries 10^4
    times a floored diagonal (correlation ``1 - 1e-8``) the loss magnifies
    any rounding (of the head's products, or of the substitution) past
    1e-12, for autograd and the hand-written step alike (each 1e-12 to 6e-11
    from a 60-digit reference at d = 3).
    """
    T = d * (d + 1) // 2
    n_head = K + K * d + K * T
    n_in = n_head if not hidden else 4
    net = MDNNetwork(n_in, d, K, hidden, "tanh", "full", 1e-3).to(dtype)
    net.reset_parameters(torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        if not hidden:
            net.head.weight.copy_(torch.eye(n_head))
            net.head.bias.zero_()
            return net
        net.head.weight.normal_(0.0, 1.0, generator=g)
        net.head.bias.normal_(0.0, 1.0, generator=g)
        raw_w = net.head.weight[K + K * d :].view(K, T, -1)
        raw_b = net.head.bias[K + K * d :].view(K, T)
        raw_w[:, ~net.tril_is_diag] *= 1e-3
        raw_b[:, ~net.tril_is_diag] *= 1e-3
        raw_w[:, net.tril_is_diag] = 0.0
        raw_w[:, net.tril_is_diag, 0] = 40.0
        raw_b[:, net.tril_is_diag] = -15.0
    return net


def _full_batch(net, n, seed=0):
    """x (for an identity head: the raw outputs, diagonals uniform on
    (-45, 30) and entry (i, j) off the diagonal ``0.9 N(0, 1) sqrt(L_ii L_jj)``:
    correlations far from 1); y drawn from a random component of each row's mixture (so
    that a floored scale does not make every density vanish); random sample
    weights summing to one."""
    g = torch.Generator().manual_seed(seed)
    dtype = net.head.weight.dtype
    n_in = net.trunk[0].in_features if len(net.trunk) else net.head.in_features
    x = 3.0 * torch.randn(n, n_in, generator=g, dtype=dtype)
    if not len(net.trunk):
        K, d = net.n_components, net.n_outputs
        tril = x[:, K + K * d :].view(n, K, -1)
        raw = torch.rand(n, K, d, generator=g, dtype=dtype) * 75.0 - 45.0
        s = F.softplus(raw) + net.min_scale
        rows, cols = torch.tril_indices(d, d)
        tril.mul_(s[..., rows].mul(s[..., cols]).sqrt_().mul_(0.3))
        tril[..., net.tril_is_diag] = raw
    with torch.no_grad():
        params = net(x)
    rows = torch.arange(n)
    pick = torch.randint(net.n_components, (n,), generator=g)
    eps = torch.randn(n, net.n_outputs, 1, generator=g, dtype=dtype)
    y = params.means[rows, pick] + (params.scale_tril[rows, pick] @ eps)[..., 0]
    w = torch.rand(n, generator=g, dtype=dtype)
    return x, y, w / w.sum()


def _raw_diagonals(net, x):
    with torch.no_grad():
        _, _, raw = net.head_outputs(x)
    return raw[..., net.tril_is_diag]


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("K", [1, 5])
@pytest.mark.parametrize(("hidden", "tol"), [((), 1e-13), ((8, 5), 5e-12)])
def test_full_covariance_step_matches_autograd(d, K, hidden, tol):
    """The hand-written 'full' step against AutogradStep (autograd through
    solve_triangular in mixture_log_prob, as every 'full' fit trained
    before) on the same network and batch, float64, with sample weights and
    Cholesky diagonals on the scale floor on some rows (and, through the
    identity head, on softplus's linear branch on others): the same loss and
    gradients, to ``tol`` relative to each gradient's largest entry. With
    hidden layers the two steps' heads round differently, and a floored
    scale (1e-3) divides that rounding of the means (about 1e-15) into the
    gradients: a few 1e-12 (measured), where the identity head gives 1e-14.
    """
    net = _full_network(d, K, hidden)
    x, y, w = _full_batch(net, 200)
    raw = _raw_diagonals(net, x)
    assert (F.softplus(raw) < 1e-9 * net.min_scale).any(dim=(1, 2)).sum() >= 10
    assert (raw > -10.0).sum() >= 10  # and entries far from it
    if not hidden:
        assert (raw > 20.0).any(dim=(1, 2)).sum() >= 10
    want_loss, want = _step_grads(net, AutogradStep, x, y, w)
    got_loss, got = _step_grads(net, ManualBackprop, x, y, w)
    assert float(got_loss) == pytest.approx(float(want_loss), rel=1e-13)
    for g, ref in zip(got, want, strict=True):
        assert torch.isfinite(ref).all() and ref.abs().max() > 0
        assert (g - ref).abs().max() <= tol * ref.abs().max()


def test_full_covariance_loss_gradients_against_autograd_of_log_prob():
    """full_nll_forward and full_nll_backward alone (no ``out`` buffers), on
    raw head outputs, against autograd through ``MDNNetwork.forward`` (the
    Cholesky factor) and ``mixture_log_prob`` (solve_triangular); the loss
    also against scipy's multivariate normal densities."""
    K, d = 2, 3
    net = _full_network(d, K, ())
    x, y, w = _full_batch(net, 50)
    raw = x.clone().requires_grad_(True)
    params = net(raw)
    want = -(w * mixture_log_prob(params, y)).sum()
    (want_grad,) = torch.autograd.grad(want, raw)
    loss, saved = full_nll_forward(
        x[:, :K].t().contiguous(),
        x[:, K : K + K * d].reshape(-1, K, d).permute(1, 2, 0).contiguous(),
        x[:, K + K * d :].reshape(-1, K, d * (d + 1) // 2).permute(1, 2, 0),
        y.t().contiguous(),
        w,
        net.min_scale,
    )
    logits, means, tril = full_nll_backward(saved, 1.0)
    got_grad = torch.cat(
        [
            logits.t(),
            means.permute(2, 0, 1).flatten(1),
            tril.permute(2, 0, 1).flatten(1),
        ],
        dim=1,
    )
    assert float(loss) == pytest.approx(float(want.detach()), rel=1e-13)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-10, atol=1e-13)
    p = params.log_weights.detach().exp().numpy()
    L = params.scale_tril.detach().numpy()
    mu = params.means.detach().numpy()
    density = [
        sum(
            p[i, k] * multivariate_normal(mu[i, k], L[i, k] @ L[i, k].T).pdf(y[i])
            for k in range(K)
        )
        for i in range(len(y))
    ]
    reference = -(w.numpy() * np.log(density)).sum()
    assert float(loss) == pytest.approx(reference, rel=1e-8)


def test_full_covariance_step_in_float32():
    """As in float64, to float32's rounding of the head magnified by the
    floored scales (1e-3) of some rows. The compiled block's float tanh is
    within 3e-7 of tanh (torch's, 3e-8): measured up to 2e-3 of the
    largest gradient (torch's path: up to 5e-4)."""
    net = _full_network(2, 5, (8, 5), dtype=torch.float32)
    x, y, w = _full_batch(net, 300)
    want_loss, want = _step_grads(net, AutogradStep, x, y, w)
    got_loss, got = _step_grads(net, ManualBackprop, x, y, w)
    assert float(got_loss) == pytest.approx(float(want_loss), rel=1e-5)
    tol = 5e-3 if _fused.BLOCKS else 1e-3
    for g, ref in zip(got, want, strict=True):
        assert (g - ref).abs().max() <= tol * ref.abs().max()


def test_workspace_serves_changing_batch_sizes():
    """Buffers are kept per batch size; a size seen again reuses them."""
    net = _network("diagonal")
    opt = FlatAdam(net, 1e-3, 0.0)
    step = ManualBackprop(net)
    try:
        for n, seed in [(12, 0), (5, 1), (12, 2), (7, 3), (9, 4), (11, 5), (5, 6)]:
            x, y, w = _batch(n, seed)
            loss = step(x, y, w)
            got = [p.grad.clone() for p in net.parameters()]
            opt.release()
            want_loss, want = _autograd(net, x, y, w)
            opt = FlatAdam(net, 1e-3, 0.0)
            step.network = net
            torch.testing.assert_close(loss, want_loss, rtol=1e-12, atol=1e-12)
            for g, ref in zip(got, want, strict=True):
                torch.testing.assert_close(g, ref, rtol=1e-10, atol=1e-12)
        assert len(step._workspace) <= 4
    finally:
        opt.release()


@pytest.mark.parametrize(
    ("noise_type", "activation", "supported"),
    [("full", "tanh", True), ("diagonal", "gelu", False), ("diagonal", "silu", False),
     ("fixed", "relu", True), ("full", "silu", False)],
)  # fmt: skip
def test_supports_only_what_it_differentiates(noise_type, activation, supported):
    net = _network(noise_type, activation)
    assert ManualBackprop.supports(net) is supported
    if not supported:
        with pytest.raises(ValueError, match="autograd"):
            ManualBackprop(net)


def test_far_components_leave_no_subnormal_gradients():
    """A component e^-95 less likely than the best has a subnormal float32
    responsibility (and slows every product after it); it is dropped, and the
    loss and gradients stay those of the exact mixture."""
    net = _network("diagonal", hidden=(8,), dtype=torch.float32)
    with torch.no_grad():  # unit scales; means 0, 8, 16, 24 in each of 3 dims
        net.head.weight.mul_(1e-3)
        net.head.bias[:4] = 0.0
        net.head.bias[4:16] = torch.arange(4.0).repeat_interleave(3) * 7.96
        net.head.bias[16:] = 0.5413  # softplus^-1(1)
    x, _, w = _batch(400, dtype=torch.float32)
    y = 0.05 * torch.randn(400, 3, generator=torch.Generator().manual_seed(2))
    log_p = _log_prob64(net, x, y, component=1) - _log_prob64(net, x, y)
    assert (log_p < -87.3).all() and (log_p > -103).all()  # subnormal in float32
    got_loss = _float32_grads_match_without_subnormals(net, x, y, w)
    reference = -(w.double() * _log_prob64(net, x, y)).sum()
    assert float(got_loss) == pytest.approx(float(reference), rel=1e-5)


def test_a_weight_too_small_for_float32_leaves_no_subnormal_gradients():
    """A component weighted e^-95 of the largest (its logit 95 below) has a
    subnormal float32 weight, and its logit's gradient ``(resp - pi) w``
    would be subnormal too: the weight is dropped (as documented, below
    e^-60 of the largest), the gradients stay autograd's to float32."""
    net = _network("diagonal", hidden=(8,), dtype=torch.float32)
    with torch.no_grad():  # unit scales, means 0; logits (0, -95, 0, 0)
        net.head.weight.mul_(1e-3)
        net.head.bias[:4] = torch.tensor([0.0, -95.0, 0.0, 0.0])
        net.head.bias[4:16] = 0.0
        net.head.bias[16:] = 0.5413  # softplus^-1(1)
    x, _, w = _batch(400, dtype=torch.float32)
    y = torch.randn(400, 3, generator=torch.Generator().manual_seed(2))
    log_pi = net(x).log_weights.detach()
    assert ((log_pi[:, 1] - log_pi[:, 0]) < -87.3).all()  # subnormal in float32
    _float32_grads_match_without_subnormals(net, x, y, w)


def _float32_grads_match_without_subnormals(net, x, y, w) -> torch.Tensor:
    """Assert the hand-written float32 gradients have no subnormal entry and
    equal autograd's to float32 precision; return the hand-written loss."""
    _, want = _autograd(net, x, y, w)
    loss, got = _manual(net, x, y, w)
    tiny = torch.finfo(torch.float32).tiny
    for g, ref in zip(got, want, strict=True):
        assert not ((g != 0) & (g.abs() < tiny)).any()
        torch.testing.assert_close(g, ref, rtol=1e-4, atol=1e-6)
    return loss


def _log_prob64(net, x, y, component=None):
    """float64 log p(y|x), or the log of one component's term in it."""
    with torch.no_grad():
        p = net.double()(x.double())
        net.float()
        if component is not None:
            k = slice(component, component + 1)
            p = p._replace(
                log_weights=p.log_weights[:, k], means=p.means[:, k],
                scales=p.scales[:, k],
            )  # fmt: skip
        return mixture_log_prob(p, y.double())


def _blocked(net, x, y, w, workers, block_rows, step_type=ManualBackprop):
    opt = FlatAdam(net, 1e-3, 0.0)
    opt.grad.fill_(123.0)
    step = BlockedBackprop(net, opt.grad, block_rows, step_type)
    try:
        loss = step(x, y, w, workers)
        return loss, [p.grad.clone() for p in net.parameters()], step.blocks(len(x))
    finally:
        step.close()
        opt.release()


@pytest.mark.parametrize(
    ("noise_type", "activation", "step_type"),
    [(noise_type, "tanh", ManualBackprop) for noise_type in [*DIAGONAL_TYPES, "full"]]
    + [  # the networks ManualBackprop does not support: autograd per block
        ("full", "tanh", AutogradStep),
        ("diagonal", "gelu", AutogradStep),
        ("fixed", "silu", AutogradStep),
        ("isotropic", "tanh", AutogradStep),
    ],
)
def test_blocked_step_matches_autograd_and_ignores_the_worker_count(
    noise_type, activation, step_type
):
    """Blocks of at most 16 rows: gradients summed over blocks are the batch's
    gradients (autograd on the whole batch), and the bits are the same on one,
    two or three worker threads."""
    net = _network(noise_type, activation)
    x, y, w = _batch(100)
    want_loss, want = _autograd(net, x, y, w)
    runs = [_blocked(net, x, y, w, k, 16, step_type) for k in (1, 2, 3)]
    loss, grads, blocks = runs[0]
    assert len(blocks) == 8  # ceil(100 / 16) = 7, rounded up to even
    torch.testing.assert_close(loss, want_loss, rtol=1e-12, atol=1e-12)
    for g, ref in zip(grads, want, strict=True):
        torch.testing.assert_close(g, ref, rtol=1e-10, atol=1e-12)
    for other_loss, other, _ in runs[1:]:
        assert torch.equal(other_loss, loss)
        assert all(torch.equal(a, b) for a, b in zip(other, grads, strict=True))


@pytest.mark.parametrize("step_type", [ManualBackprop, AutogradStep])
@pytest.mark.parametrize("with_index", [False, True])
def test_blocks_that_gather_their_own_rows_give_the_same_bits(step_type, with_index):
    """unit_rows (each block gathers its rows of ``[x | y | 1]``) against the
    step on the gathered batch with weights ``w / w.sum()``, as training did
    before: the same loss and gradients to the bit, on one or two workers."""
    net = _network("diagonal")
    x, y, _ = _batch(150)
    packed = torch.cat([x, y, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    index = torch.randperm(150, generator=torch.Generator().manual_seed(3))[:100]
    rows = packed[index] if with_index else packed
    w = rows[:, -1]
    f = x.shape[1]
    want_loss, want, _ = _blocked(
        net, rows[:, :f], rows[:, f:-1], w / w.sum(), 2, 16, step_type
    )
    for workers in (1, 2):
        opt = FlatAdam(net, 1e-3, 0.0)
        opt.grad.fill_(123.0)
        step = BlockedBackprop(net, opt.grad, 16, step_type)
        try:
            loss = step.unit_rows(packed, index if with_index else None, f, workers)
            grads = [p.grad.clone() for p in net.parameters()]
        finally:
            step.close()
            opt.release()
        assert torch.equal(loss, want_loss)
        assert all(torch.equal(a, b) for a, b in zip(grads, want, strict=True))


@pytest.mark.parametrize("n", [1, 3, 4, 5, 15, 16, 17, 31, 32, 33, 100, 1000])
def test_blocks_partition_the_batch_by_its_size_alone(n):
    """One block below a quarter of the largest block, else an even number
    of near-equal blocks of at most ``block_rows`` rows."""
    step = BlockedBackprop(_network("diagonal"), torch.zeros(0), block_rows=16)
    blocks = step.blocks(n)
    assert blocks[0].start == 0 and blocks[-1].stop == n
    assert all(a.stop == b.start for a, b in itertools.pairwise(blocks))
    sizes = [b.stop - b.start for b in blocks]
    assert max(sizes) <= 16 or len(blocks) == 1
    assert max(sizes) - min(sizes) <= 1
    if n < 4:
        assert len(blocks) == 1
    else:
        assert len(blocks) >= 2 and len(blocks) % 2 == 0


def test_an_error_on_the_calling_thread_stops_the_helpers():
    """The calling thread runs blocks too: an error there (or Ctrl-C) stops
    the worker after its current block, is raised, and the next step gives
    the same result as before."""
    net = _network("diagonal")
    x, y, w = _batch(64)
    opt = FlatAdam(net, 1e-3, 0.0)
    step = BlockedBackprop(net, opt.grad, 16)
    caller = threading.get_ident()
    try:
        want = step(x, y, w, 2)
        want_grad = opt.grad.clone()
        saved = list(step._slots)
        ran, caller_started = [], threading.Event()

        def on_caller_fails(manual):
            def block(*args):
                on_caller = threading.get_ident() == caller
                ran.append(on_caller)
                if on_caller:
                    caller_started.set()
                    raise KeyboardInterrupt
                assert caller_started.wait(10)  # the worker's block outlasts it
                return manual(*args)

            return block

        step._slots = [(on_caller_fails(m), *rest) for m, *rest in saved]
        with pytest.raises(KeyboardInterrupt):
            step(x, y, w, 2)
        assert ran.count(True) == 1  # the caller stopped at its first block
        assert len(ran) <= 2  # the worker finished at most the block it had
        step._slots = saved
        assert torch.equal(step(x, y, w, 2), want)
        assert torch.equal(opt.grad, want_grad)
    finally:
        step.close()
        opt.release()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_block_reaches_the_caller_and_the_step_recovers(workers):
    """An error in a block run by a worker thread is raised by the step; the
    next step runs on the same workers and gives the same result as before."""
    net = _network("diagonal")
    x, y, w = _batch(64)
    opt = FlatAdam(net, 1e-3, 0.0)
    step = BlockedBackprop(net, opt.grad, 16)
    try:
        want = step(x, y, w, workers)
        want_grad = opt.grad.clone()
        saved = step._slots[3]

        def fail(*args):
            raise ValueError("block 3 failed")

        step._slots[3] = (fail, *saved[1:])
        with pytest.raises(ValueError, match="block 3 failed"):
            step(x, y, w, workers)
        step._slots[3] = saved
        assert torch.equal(step(x, y, w, workers), want)
        assert torch.equal(opt.grad, want_grad)
    finally:
        step.close()
        opt.release()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("weighted", [False, True])
def test_full_covariance_fit_follows_the_autograd_fit(d, weighted, monkeypatch):
    """A float64 'full' fit through the hand-written step against the same
    fit through AutogradStep (as every 'full' fit ran before): batches of 200
    rows in blocks of at most 64 (4 blocks, on 2 workers), with and without
    sample weights; the loss curves agree to rounding over 20 epochs."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(800, 2))
    mixing = np.tril(rng.normal(size=(d, d))) + 2.0 * np.eye(d)
    Y = np.c_[[np.sin(X[:, 0]), X[:, 1] ** 2, X[:, 0] * X[:, 1]]].T[:, :d]
    Y = Y + 0.3 * rng.normal(size=(800, d)) @ mixing.T
    w = rng.uniform(0.5, 2.0, size=800) if weighted else None
    params = dict(
        noise_type="full", n_components=3, hidden_layer_sizes=(16, 16),
        batch_size=200, max_iter=20, early_stopping=False, n_threads=2,
        random_state=0,
    )  # fmt: skip
    monkeypatch.setattr(training, "SMALL_BATCH", 64)
    fast = MDNRegressor(**params).fit(X, Y, sample_weight=w)
    monkeypatch.setattr(ManualBackprop, "supports", staticmethod(lambda net: False))
    slow = MDNRegressor(**params).fit(X, Y, sample_weight=w)
    assert len(fast.loss_curve_) == len(slow.loss_curve_) == 20
    np.testing.assert_allclose(fast.loss_curve_, slow.loss_curve_, rtol=1e-9)
