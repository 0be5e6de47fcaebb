"""The compiled training block (``skmdn._fused.mlp_block``): its products
against ``torch.mm``, its tanh against the exact one, its refusals and
declines. Its loss and gradients against autograd are in
``test_backprop.py``, which runs every test with the block compiled."""

from __future__ import annotations

import os
import platform
import sys

import numpy as np
import pytest
import torch

from skmdn import _fused
from skmdn._backprop import ManualBackprop
from skmdn._network import MDNNetwork
from skmdn._training import FlatAdam

# CI builds the extension (SKMDN_REQUIRE_CMIXTURE=1) with PyPI's CPU torch,
# whose x86-64 Linux build carries MKL: there the block must be found.
REQUIRED = (
    os.environ.get("SKMDN_REQUIRE_CMIXTURE") == "1"
    and sys.platform.startswith("linux")
    and platform.machine() == "x86_64"
)

needs_block = pytest.mark.skipif(
    not REQUIRED and (_fused._cmixture is None or not _fused.blas_available()),
    reason="the compiled block needs the extension and torch's MKL",
)


@pytest.fixture(autouse=True)
def _block_on(monkeypatch):
    monkeypatch.setattr(_fused, "ENABLED", True)
    monkeypatch.setattr(_fused, "BLOCKS", True)


def test_the_block_is_found_where_required():
    if not REQUIRED:
        pytest.skip("SKMDN_REQUIRE_CMIXTURE is not set on x86-64 Linux")
    assert _fused.blas_available(), "torch's sgemm_/dgemm_ were not found"


@needs_block
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("m", "n", "k"),
    [(64, 4096, 64), (64, 300, 1), (15, 300, 64), (64, 64, 300), (1, 64, 300)],
)
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_products_are_torch_mm_to_the_bit(dtype, m, n, k, ta, tb):
    """The block's products are the BLAS calls torch's mm makes for these
    layouts: the same bits."""
    g = torch.Generator().manual_seed(m + n + k)
    A = torch.randn(*((k, m) if ta else (m, k)), generator=g, dtype=dtype)
    B = torch.randn(*((n, k) if tb else (k, n)), generator=g, dtype=dtype)
    C = torch.full((m, n), np.nan, dtype=dtype)
    f64 = dtype == torch.float64
    _fused._cmixture.mm(f64, m, n, k, A.data_ptr(), ta, B.data_ptr(), tb, C.data_ptr())
    assert torch.equal(C, torch.mm(A.t() if ta else A, B.t() if tb else B))


def _tanh_network(dtype, values):
    """A one-feature network whose first hidden layer's inputs are
    ``values`` (weight 1, bias 0 on its first unit)."""
    net = MDNNetwork(1, 1, 2, (4,), "tanh", "diagonal", 1e-3)
    net.reset_parameters(torch.Generator().manual_seed(0))
    net = net.to(dtype)
    with torch.no_grad():
        net.trunk[0].weight[0] = 1.0
        net.trunk[0].bias[0] = 0.0
    x = torch.as_tensor(values, dtype=dtype)[:, None]
    return net, x


@needs_block
@pytest.mark.parametrize(
    ("dtype", "tol"), [(torch.float32, 3e-7), (torch.float64, 1e-15)]
)
def test_tanh_is_within_its_bound_of_the_exact_one(dtype, tol):
    """float32: Eigen's rational tanh, within 3e-7 (absolute, and relative
    near 0), never past +-1; float64: glibc's vector tanh (4 ulp). Against
    float64 tanh of the same float inputs, over -20..20, tiny values and
    the infinities."""
    grid = np.concatenate(
        [
            np.linspace(-20, 20, 20001),
            np.geomspace(1e-30, 1e-2, 400),
            -np.geomspace(1e-30, 1e-2, 400),
            [0.0, np.inf, -np.inf, 7.9, 7.91, 8.0, 9.0],
        ]
    )
    net, x = _tanh_network(dtype, grid)
    FlatAdam(net, 1e-3, 0.0)  # the .grad buffers the block writes to
    step = ManualBackprop(net)
    y = torch.zeros(len(x), 1, dtype=dtype)
    step(x, y, torch.full((len(x),), 1.0 / len(x), dtype=dtype))
    got = step._buffers(len(x), x)[0][1][0].double()
    exact = torch.tanh(x[:, 0].double())
    assert torch.all(got.abs() <= 1.0)
    err = (got - exact).abs()
    assert err.max() <= tol
    tiny = exact.abs() < 1e-2
    assert torch.all(err[tiny] <= tol * exact[tiny].abs())


@needs_block
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_nan_input_gives_a_nan_loss(dtype):
    """NaN is not clamped away by the tanh: the loss shows it."""
    net, x = _tanh_network(dtype, [0.5, np.nan, -0.5])
    FlatAdam(net, 1e-3, 0.0)
    y = torch.zeros(3, 1, dtype=dtype)
    loss = ManualBackprop(net)(x, y, torch.full((3,), 1 / 3, dtype=dtype))
    assert torch.isnan(loss)


def _block_case(dtype=torch.float32, n=50):
    net = MDNNetwork(3, 2, 3, (8, 5), "tanh", "diagonal", 1e-3)
    net.reset_parameters(torch.Generator().manual_seed(0))
    net = net.to(dtype)
    opt = FlatAdam(net, 1e-3, 0.0)
    step = ManualBackprop(net)
    acts, deltas, (_, first, rest), _ = step._buffers(n, opt.flat)
    params = step._params
    grads = [t for m in step.linears for t in (m.weight.grad, m.bias.grad)]
    return net, opt, step, acts, deltas, first, rest, params, grads


@needs_block
def test_a_plan_refuses_tensors_it_cannot_read_safely():
    _, _, _, acts, deltas, first, _, params, grads = _block_case()
    _fused.mlp_plan(params, grads, acts, deltas, first)  # fits
    cases = {
        "params[2]": ([*params[:2], params[2].t(), *params[3:]], grads, acts),
        "grads[1]": (params, [grads[0], grads[1].double(), *grads[2:]], acts),
        "acts[1]": (params, grads, [acts[0], acts[1][:, :-1], *acts[2:]]),
    }
    for name, (p, g, a) in cases.items():
        with pytest.raises(ValueError, match=rf"mlp_plan: {name.replace('[', '.')}"):
            _fused.mlp_plan(p, g, a, deltas, first)
    with pytest.raises(ValueError, match="layers need"):
        _fused.mlp_plan(params[:-1], grads, acts, deltas, first)


@needs_block
def test_a_block_refuses_a_head_or_rows_that_do_not_fit():
    net, _, _, acts, deltas, first, rest, params, grads = _block_case()
    plan = _fused.mlp_plan(params, grads, acts, deltas, first)
    y, w = rest[:2], rest[2]
    args = (net.n_components, "diagonal", 1e-3)
    with pytest.raises(ValueError, match="does not fit 4 components"):
        _fused.mlp_block(plan, acts[0], "tanh", y, w, 4, "diagonal", 1e-3)
    packed = torch.randn(100, 6)
    with pytest.raises(ValueError, match=r"rest\[:d\] and rest\[d\]"):
        gather = (packed, None, slice(0, 50), 50, rest)
        _fused.mlp_block(plan, acts[0], "tanh", y.clone(), w, *args, gather=gather)
    with pytest.raises(ValueError, match=r"x_t must be .* of shape \(3, 40\)"):
        gather = (packed, None, slice(0, 40), 50, rest)
        _fused.mlp_block(plan, acts[0], "tanh", y, w, *args, gather=gather)


@needs_block
@pytest.mark.parametrize("bad", [-1, 100])
def test_a_block_refuses_an_index_outside_the_data_before_any_gradient(bad):
    _, opt, step, *_ = _block_case()
    packed = torch.randn(100, 6)
    index = torch.arange(50)
    index[7] = bad
    opt.grad.fill_(123.0)
    with pytest.raises(IndexError, match="row 7 of the block is outside"):
        step.rows(packed, index, slice(0, 50), 3, 50)
    assert torch.all(opt.grad == 123.0)


def test_the_block_declines_what_it_does_not_compute(monkeypatch):
    like = torch.zeros(3, 4)
    assert not _fused.block_applies(like, "logistic")
    assert not _fused.block_applies(like.half(), "tanh")
    monkeypatch.setattr(_fused, "BLOCKS", False)
    assert not _fused.block_applies(like, "tanh")
    monkeypatch.setattr(_fused, "BLOCKS", True)
    monkeypatch.setattr(_fused, "ENABLED", False)
    assert not _fused.block_applies(like, "relu")
    monkeypatch.setattr(_fused, "ENABLED", True)
    monkeypatch.setattr(_fused, "_blas", None)  # look again, and find none
    monkeypatch.setattr(_fused, "_blas_addresses", lambda: None)
    assert not _fused.blas_available()
    assert not _fused.block_applies(like, "identity")


@needs_block
def test_a_block_without_the_blas_takes_torch_s_path(monkeypatch):
    """Where the block does not apply, ManualBackprop computes the same
    step through torch's products (to rounding)."""
    _, opt, step, *_ = _block_case(torch.float64)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(50, 3, generator=g, dtype=torch.float64)
    y = torch.randn(50, 2, generator=g, dtype=torch.float64)
    w = torch.full((50,), 1 / 50, dtype=torch.float64)
    loss = step(x, y, w)
    want = opt.grad.clone()
    monkeypatch.setattr(_fused, "_blas", False)
    assert not _fused.block_applies(x, "tanh")
    opt.grad.zero_()
    torch.testing.assert_close(step(x, y, w), loss, rtol=1e-13, atol=0)
    torch.testing.assert_close(opt.grad, want, rtol=1e-12, atol=1e-15)


def test_the_blas_is_taken_from_torch_s_mkl_only(monkeypatch):
    """A torch whose library has sgemm_ but not MKL (OpenBLAS, say) keeps
    torch's path: only MKL's thread count follows torch.set_num_threads."""

    class NotMKL:  # a library with the products but without MKL's services
        sgemm_ = dgemm_ = object()

    monkeypatch.setattr(_fused.ctypes, "CDLL", lambda path: NotMKL())
    monkeypatch.setattr(_fused.os.path, "exists", lambda path: True)
    assert _fused._blas_addresses() is None


@needs_block
def test_the_blas_found_is_torch_s():
    sgemm, dgemm = _fused._blas_addresses()
    assert sgemm and dgemm and sgemm != dgemm


class _FakeExtension:
    """An extension whose products write nothing: the check must refuse it."""

    VECTOR_MATH = 1

    def __init__(self):
        self.handed = []

    def mlp_block(self, *args):  # pragma: no cover - never reached
        raise AssertionError("called")

    def set_blas(self, *addresses):
        self.handed.append(addresses)

    def mm(self, *args):
        pass


def test_a_blas_that_fails_the_check_is_handed_back(monkeypatch):
    fake = _FakeExtension()
    monkeypatch.setattr(_fused, "_cmixture", fake)
    monkeypatch.setattr(_fused, "_blas_addresses", lambda: (1, 2))
    monkeypatch.setattr(_fused.platform, "machine", lambda: "x86_64")
    assert not _fused._find_blas()
    assert fake.handed == [(1, 2), (0, 0)]  # given, then taken back


def test_no_blas_without_the_library_or_its_addresses(monkeypatch):
    monkeypatch.setattr(_fused.os.path, "exists", lambda path: False)
    assert _fused._blas_addresses() is None
    monkeypatch.setattr(_fused, "_cmixture", None)  # not built
    assert not _fused._find_blas()
    monkeypatch.setattr(_fused, "_cmixture", _FakeExtension())
    monkeypatch.setattr(_fused.platform, "machine", lambda: "x86_64")
    for found in (None, (0, 2)):
        monkeypatch.setattr(_fused, "_blas_addresses", lambda found=found: found)
        assert not _fused._find_blas()


@needs_block
def test_plans_are_kept_for_a_few_gradient_buffers_at_a_time():
    """A block's plan is per set of gradient tensors; a stream of new ones
    keeps at most four, and every step still writes where it is told."""
    _, opt, step, *_ = _block_case(torch.float64)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(50, 3, generator=g, dtype=torch.float64)
    y = torch.randn(50, 2, generator=g, dtype=torch.float64)
    w = torch.full((50,), 1 / 50, dtype=torch.float64)
    step(x, y, w)
    want = opt.grad.clone()
    buffers = []  # all alive: six different addresses, so six new plans
    for _ in range(6):
        buffer = torch.full_like(opt.grad, 123.0)
        buffers.append(buffer)
        grads = [
            (buffer[v.storage_offset() - opt.grad.storage_offset() :][: v.numel()]
             .view_as(v) for v in (m.weight.grad, m.bias.grad))
            for m in step.linears
        ]  # fmt: skip
        step(x, y, w, [tuple(pair) for pair in grads])
        torch.testing.assert_close(buffer, want, rtol=0, atol=0)
    assert 1 <= len(step._buffers(50, x)[3]) <= 4
