"""The device parameter between fits, and models moved between machines.

There is no GPU here. Where a test needs the model to go to another device,
``'cuda'`` is resolved to torch's ``'meta'`` device (tensors with shapes and
no data, on which any attempt to read a value fails) and training is stopped
as it starts, which shows where every tensor of the step would live.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

import skmdn._regressor as regressor
from tests.test_faults import X, Y, assert_unchanged, model, quiet_fit, snapshot


class _TrainingStarted(Exception):
    """Raised by the stand-in for training once it has seen its inputs."""


class _TorchWithCpuGenerators:
    """``torch`` for skmdn._regressor, but with CPU generators: the meta
    device has none. Every other name is torch's."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def Generator(device=None):  # torch's name
        return torch.Generator()


def _cuda_is_meta(monkeypatch) -> dict:
    """Resolve ``'cuda'`` to the meta device and stop training as it starts;
    returns the devices training saw."""
    real = regressor.resolve_device
    seen = {}

    def resolve(device, **kwargs):
        return torch.device("meta") if device == "cuda" else real(device, **kwargs)

    def train(network, optimizer, data, history, **kwargs):
        seen["network"] = {p.device.type for p in network.parameters()}
        seen["buffers"] = {b.device.type for b in network.buffers()}
        seen["adam"] = {
            t.device.type for t in (optimizer.flat, optimizer.exp_avg, optimizer.grad)
        }
        seen["adam_t"] = optimizer.t
        seen["data"] = data.train.device.type
        raise _TrainingStarted

    monkeypatch.setattr(regressor, "resolve_device", resolve)
    monkeypatch.setattr(regressor, "torch", _TorchWithCpuGenerators())
    monkeypatch.setattr(regressor, "train", train)
    # the loss at initialisation reads a value, which meta tensors have not
    monkeypatch.setattr(regressor, "_initial_loss", lambda *args: 0.0)
    return seen


@pytest.mark.parametrize("noise_type", ["diagonal", "fixed"])
@pytest.mark.parametrize("method", ["warm_fit", "partial_fit"])
def test_a_continued_model_trains_on_the_device_set_since(
    monkeypatch, method, noise_type
):
    """set_params(device=...) then warm_start=True or partial_fit: the model
    and Adam's state go to the new device (they stayed on the old one,
    silently)."""
    m = quiet_fit(model(warm_start=True, noise_type=noise_type, fixed_noise_level=0.1))
    before = snapshot(m)
    seen = _cuda_is_meta(monkeypatch)
    m.set_params(device="cuda")
    call = m.partial_fit if method == "partial_fit" else m.fit
    with pytest.raises(_TrainingStarted):
        call(X, Y)
    assert seen["network"] | seen["buffers"] == seen["adam"] == {"meta"}
    assert seen["data"] == "meta"
    assert seen["adam_t"] == before["t"]  # Adam's state continued, not reset
    # the fitted model itself never moved: a failed call leaves it as it was
    assert m.device_ == "cpu"
    assert {p.device.type for p in m.network_.parameters()} == {"cpu"}
    monkeypatch.undo()
    assert_unchanged(m, before)


@pytest.mark.parametrize("method", ["warm_fit", "partial_fit"])
def test_continuing_on_the_same_device_named_differently_changes_nothing(method):
    """'cpu', torch.device('cpu') and 'auto' (on this machine) are one device:
    the continued model is the same bits as with the device left alone."""
    call = "partial_fit" if method == "partial_fit" else "fit"
    results = []
    for device in ("cpu", torch.device("cpu"), "auto"):
        m = quiet_fit(model(warm_start=True, device="cpu"))
        m.set_params(device=device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            getattr(m, call)(X, Y)
        assert m.device_ == "cpu"
        results.append(m.predict_dist(X))
    for dist in results[1:]:
        np.testing.assert_array_equal(dist.means, results[0].means)
        np.testing.assert_array_equal(dist.covariances, results[0].covariances)


@pytest.mark.parametrize("method", ["warm_fit", "partial_fit"])
def test_continuing_a_float64_model_on_mps_is_refused(monkeypatch, method):
    # MPS has no float64: a model built in float64 cannot continue there
    real = regressor.resolve_device
    monkeypatch.setattr(
        regressor,
        "resolve_device",
        lambda d, **k: torch.device("mps") if d == "mps" else real(d, **k),
    )
    m = quiet_fit(model(warm_start=True))
    before = snapshot(m)
    m.set_params(device="mps")
    call = m.partial_fit if method == "partial_fit" else m.fit
    with pytest.raises(ValueError, match=r"float64.*MPS.*device='cpu'.*warm_start"):
        call(X, Y)
    assert_unchanged(m, before)


@pytest.mark.parametrize("method", ["warm_fit", "partial_fit"])
def test_continuing_on_a_device_this_machine_lacks_is_refused(monkeypatch, method):
    from skmdn import _utils

    monkeypatch.setattr(_utils, "_cuda_available", lambda: False)
    m = quiet_fit(model(warm_start=True))
    before = snapshot(m)
    m.set_params(device="cuda:1")
    call = m.partial_fit if method == "partial_fit" else m.fit
    with pytest.raises(ValueError, match="device='cuda:1' was requested but is not"):
        call(X, Y)
    assert_unchanged(m, before)


def test_torch_device_objects_are_accepted(monkeypatch):
    from skmdn import _utils

    assert _utils.resolve_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(_utils, "_cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    # as their strings: 'cuda' is the GPU current at fit time
    assert _utils.resolve_device(torch.device("cuda")) == torch.device("cuda", 1)
    assert _utils.resolve_device(torch.device("cuda", 0)) == torch.device("cuda", 0)
    with pytest.raises(ValueError, match="device='cuda:2' was requested"):
        _utils.resolve_device(torch.device("cuda", 2))
    for device in (torch.device("meta"), torch.device("cpu", 1)):
        with pytest.raises(ValueError, match="is not understood"):
            _utils.resolve_device(device)
    m = quiet_fit(model(device=torch.device("cpu")))
    assert m.device_ == "cpu"
    reference = quiet_fit(model(device="cpu"))
    np.testing.assert_array_equal(m.predict(X), reference.predict(X))
