"""``skmdn._kernels``: both tanh forms against numpy, and how one is chosen."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from skmdn import _kernels
from skmdn._network import MDNNetwork

FORMS = [False, True]  # torch.tanh, then 2 sigmoid(2x) - 1


@pytest.mark.parametrize("tanh_form", FORMS, indirect=True)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tanh_matches_numpy(tanh_form, dtype):
    x = torch.cat([
        torch.linspace(-30.0, 30.0, 20001, dtype=dtype),
        torch.tensor([0.0, 1e-30, -1e-30, float("inf"), -float("inf")], dtype=dtype),
    ])  # fmt: skip
    expected = np.tanh(x.double().numpy())
    eps = torch.finfo(dtype).eps
    out = _kernels.tanh(x)
    inplace = _kernels.tanh_(x.clone())
    for result in (out, inplace):
        assert result.dtype == dtype
        np.testing.assert_allclose(
            result.double().numpy(), expected, rtol=0, atol=2 * eps
        )
    # the sign of the limits is exact in both forms
    assert inplace[-2] == 1.0 and inplace[-1] == -1.0


@pytest.mark.parametrize("tanh_form", FORMS, indirect=True)
def test_tanh_gradient_is_one_minus_tanh_squared(tanh_form):
    x = torch.linspace(-4.0, 4.0, 101, dtype=torch.float64, requires_grad=True)
    _kernels.tanh(x).sum().backward()
    expected = 1.0 - np.tanh(x.detach().numpy()) ** 2
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("tanh_form", FORMS, indirect=True)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_network_forward_is_the_same_with_and_without_autograd(tanh_form, dtype):
    net = MDNNetwork(3, 2, 4, (16, 8), "tanh", "diagonal", 1e-3).to(dtype)
    net.reset_parameters(torch.Generator().manual_seed(0))
    x = torch.randn(50, 3, dtype=dtype, generator=torch.Generator().manual_seed(1))
    exact = copy.deepcopy(net).double()  # torch.tanh in float64, via nn.Tanh
    reference = torch.nn.Sequential(*exact.trunk, exact.head)(x.double())
    with torch.inference_mode():  # in place, the fast path
        fast = net.head(net.features(x))
    slow = net.head(net.features(x))  # autograd on
    tol = 50 * torch.finfo(dtype).eps
    for out in (fast, slow.detach()):
        np.testing.assert_allclose(out.double().numpy(), reference.detach().numpy(),
                                   rtol=0, atol=tol)  # fmt: skip


def test_choice_is_measured_once_per_dtype_with_a_margin(monkeypatch):
    timings = iter([1.4, 1.0, 1.6, 1.0])  # native, form: float32, then float64
    calls = []

    def fake_time(fn, x, repeats=7):
        calls.append(x.dtype)
        return next(timings)

    monkeypatch.setattr(_kernels, "_median_time", fake_time)
    monkeypatch.setattr(_kernels, "_choice", {})
    before = torch.get_num_threads()
    # 1.4x is inside the margin: torch.tanh stays; 1.6x is past it
    assert _kernels.sigmoid_form_is_faster(torch.float32) is False
    assert _kernels.sigmoid_form_is_faster(torch.float64) is True
    assert _kernels.sigmoid_form_is_faster(torch.float32) is False  # cached
    assert calls == [torch.float32] * 2 + [torch.float64] * 2
    assert torch.get_num_threads() == before  # restored after the probe


def test_other_dtypes_and_devices_use_torch(monkeypatch):
    monkeypatch.setattr(_kernels, "_choice", dict.fromkeys(
        (torch.float32, torch.float64), True))  # fmt: skip
    x = torch.linspace(-2, 2, 9, dtype=torch.bfloat16)
    assert torch.equal(_kernels.tanh(x), torch.tanh(x))
    x = torch.linspace(-2, 2, 9, dtype=torch.float64, device="meta")
    assert _kernels.tanh(x).device.type == "meta"


@pytest.mark.parametrize(
    "activation", ["tanh", "relu", "logistic", "gelu", "silu", "identity"]
)
@pytest.mark.parametrize("hidden", [(), (7,), (16, 8)])
def test_inference_forward_matches_the_modules(activation, hidden):
    """Without autograd the network runs mm + in-place bias and activations."""
    net = MDNNetwork(3, 2, 4, hidden, activation, "diagonal", 1e-3).double()
    net.reset_parameters(torch.Generator().manual_seed(0))
    x = torch.randn(
        40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    x_before = x.clone()
    with torch.inference_mode():
        fast = net.head_outputs(x)
    slow = net.head_outputs(x)  # autograd on: the modules themselves
    for got, want in zip(fast, slow, strict=True):
        torch.testing.assert_close(got, want.detach(), rtol=1e-13, atol=1e-13)
    assert torch.equal(x, x_before)  # the input is never written to


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_predict_times_the_forms_before_its_worker_threads_start(monkeypatch):
    import threading

    from skmdn import MDNRegressor

    X = np.linspace(-1, 1, 300)[:, None]
    model = MDNRegressor(n_components=2, max_iter=2, random_state=0, n_threads=2)
    model.fit(X, np.sin(3 * X[:, 0]))
    probes = []

    def fake_time(fn, x, repeats=7):
        probes.append(threading.current_thread() is threading.main_thread())
        return 1.0

    monkeypatch.setattr(_kernels, "_median_time", fake_time)
    monkeypatch.setattr(_kernels, "_choice", {})
    model.predict(np.repeat(X, 200, axis=0))  # 60000 rows: several chunks
    assert probes == [True, True]  # torch.tanh, then the form: once, in main
