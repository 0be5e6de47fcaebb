"""The device parameter between fits, and models moved between machines.

There is no GPU here. Where a test needs the model to go to another device,
``'cuda'`` is resolved to torch's ``'meta'`` device (tensors with shapes and
no data, on which any attempt to read a value fails) and training is stopped
as it starts, which shows where every tensor of the step would live.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

import skmdn._regressor as regressor
from skmdn import MDNRegressor
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


# Loading a state dict into meta tensors (the stand-in device) is a no-op
# that torch warns about.
@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")
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


# ------------------------------------------------------------- persistence
class _CudaTensor(torch.Tensor):
    """A CPU tensor that refuses ``.numpy()`` as a CUDA tensor does, until
    ``.cpu()`` makes a plain CPU tensor of it."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.Tensor.numpy:
            raise TypeError(
                "can't convert cuda:0 device type tensor to numpy. Use "
                "Tensor.cpu() to copy the tensor to host memory first."
            )
        if func is torch.Tensor.cpu:
            return args[0].as_subclass(torch.Tensor).clone()
        return super().__torch_function__(func, types, args, kwargs or {})


class _NoTorchUnpickler(pickle.Unpickler):
    """Refuses every torch class but ``torch.device`` (a name: it builds on
    any machine). Torch tensors unpickle through ``torch.load`` without a
    ``map_location``, which fails on a machine without the device they were
    saved from; a pickle that loads here cannot meet that."""

    def find_class(self, module, name):
        if module.split(".")[0] == "torch" and (module, name) != ("torch", "device"):
            raise pickle.UnpicklingError(f"the pickle holds {module}.{name}")
        return super().find_class(module, name)


def _as_if_on_cuda(m: MDNRegressor) -> None:
    """Give ``m`` the fitted state it has after a fit on a GPU."""
    network = m.network_
    for module in network.modules():
        for name, p in list(module.named_parameters(recurse=False)):
            setattr(
                module, name, torch.nn.Parameter(p.detach().as_subclass(_CudaTensor))
            )
        for name, b in list(module.named_buffers(recurse=False)):
            setattr(module, name, b.as_subclass(_CudaTensor))
    for key in ("exp_avg", "exp_avg_sq"):
        m._optimizer_state[key] = m._optimizer_state[key].as_subclass(_CudaTensor)
    m.device_ = "cuda:0"
    m.device = "cuda"


@pytest.mark.parametrize("noise_type", ["diagonal", "fixed", "full"])
@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_a_model_fitted_on_a_gpu_pickles_without_torch_objects(
    noise_type, dump, tmp_path, monkeypatch
):
    """What a GPU-fitted model pickles is numpy arrays and strings, read off
    the device through ``.cpu()``: the file holds no torch tensor (which
    would need the GPU, or a map_location, to load), and it loads on this
    CPU-only machine, with a warning, predicting as the model did and ready
    to continue once told the device."""
    import joblib

    from skmdn import _utils

    Y2 = np.c_[Y, np.cos(X[:, 1])]
    m = quiet_fit(model(noise_type=noise_type, fixed_noise_level=0.1), y_=Y2)
    expected = m.predict_dist(X)
    _as_if_on_cuda(m)
    with pytest.raises(TypeError, match="can't convert cuda"):  # the stand-in works
        next(m.network_.parameters()).numpy()
    monkeypatch.setattr(_utils, "_cuda_available", lambda: False)
    path = tmp_path / "model"
    if dump == "pickle":
        path.write_bytes(pickle.dumps(m))
    else:
        joblib.dump(m, path)
    with pytest.warns(RuntimeWarning, match="'cuda:0'.*set_params\\(device='cpu'\\)"):
        if dump == "pickle":
            with path.open("rb") as file:
                loaded = _NoTorchUnpickler(file).load()
        else:
            loaded = joblib.load(path)
    assert loaded.device_ == "cpu" and loaded.device == "cuda"
    assert {p.device.type for p in loaded.network_.parameters()} == {"cpu"}
    dist = loaded.predict_dist(X)
    np.testing.assert_array_equal(dist.means, expected.means)
    np.testing.assert_array_equal(dist.covariances, expected.covariances)
    # continuing needs a device this machine has; the error says which
    with pytest.raises(ValueError, match="device='cuda' was requested"):
        loaded.partial_fit(X, Y2)
    loaded.set_params(device="cpu").partial_fit(X, Y2)
    assert loaded.n_iter_ == m.n_iter_ + 1


# ------------------------------------------------------------------ outputs
class _MpsTensor(torch.Tensor):
    """A CPU tensor that says it is on MPS and, as torch's MPS copy does
    (aten/src/ATen/native/mps/operations/Copy.mm: a CPU destination of a
    dtype Metal lacks, such as float64, raises), refuses to be copied into a
    tensor of another dtype; ``.cpu()`` makes a plain CPU tensor of it."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func == torch.Tensor.device.__get__:
            return torch.device("mps")
        if func is torch.Tensor.copy_ and args[0].dtype != args[1].dtype:
            raise TypeError("Trying to convert Double to the MPS backend")
        if func is torch.Tensor.cpu:
            return args[0].as_subclass(torch.Tensor).clone()
        return super().__torch_function__(func, types, args, kwargs or {})


def test_outputs_leave_an_accelerator_in_its_own_dtype():
    """The network's outputs reach numpy through a CPU copy in their own
    dtype, converted to float64 there: an MPS tensor cannot be copied
    straight into a float64 CPU tensor (predict on MPS failed so)."""
    from skmdn._utils import to_numpy

    values = torch.linspace(-1.0, 1.0, 6, dtype=torch.float32).view(2, 3)
    on_mps = values.as_subclass(_MpsTensor)
    assert on_mps.device.type == "mps"
    with pytest.raises(TypeError, match="MPS"):  # the stand-in works
        torch.empty(2, 3, dtype=torch.float64).copy_(on_mps)
    for tensor in (on_mps, on_mps.t()):  # contiguous or not
        out = to_numpy(tensor)
        assert out.dtype == np.float64 and out.flags.c_contiguous
        np.testing.assert_array_equal(out, tensor.as_subclass(torch.Tensor).numpy())


class _ToMps(torch.overrides.TorchFunctionMode):
    """Moves to ``'mps'`` give an :class:`_MpsTensor` (there is no MPS here)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.to and str(args[1]) == "mps":
            return args[0].as_subclass(_MpsTensor)
        return func(*args, **kwargs)


def test_distinct_rows_are_found_on_the_cpu_and_mapped_to_the_device():
    """The default noise below 100 samples groups the training rows in
    float64, which MPS lacks: the grouping runs on the CPU, once per fit,
    and only its row-to-group map goes to the device (on MPS a default
    fit of small data failed so)."""
    from skmdn._training import TrainData, distinct_rows

    rng = np.random.default_rng(0)
    xy = rng.integers(0, 3, size=(40, 3)).astype(np.float32)  # repeated rows
    w = rng.uniform(0.5, 2.0, size=40).astype(np.float32)
    rows = torch.from_numpy(np.c_[xy, w]).as_subclass(_MpsTensor)
    data = TrainData(train=rows, n_features=2, log_scale=0.0)
    with _ToMps():
        (inverse, n_distinct), n_eff = distinct_rows(data)
    assert inverse.device.type == "mps"
    # reference: numpy's lexicographic unique rows, Kish of the summed weights
    unique, expected = np.unique(xy, axis=0, return_inverse=True)
    np.testing.assert_array_equal(inverse.as_subclass(torch.Tensor), expected)
    assert n_distinct == len(unique) < len(xy)
    v = np.bincount(expected, weights=w.astype(np.float64))
    assert n_eff == pytest.approx(v.sum() ** 2 / np.sum(v**2), rel=1e-12)


def test_skops_lists_a_torch_device_parameter_as_documented(tmp_path):
    sio = pytest.importorskip("skops.io", reason="skops is not installed")
    from tests.test_integration_persistence import SKOPS_TRUSTED_TYPES

    m = quiet_fit(model(device=torch.device("cpu")))
    sio.dump(m, tmp_path / "m.skops")
    found = sio.get_untrusted_types(file=tmp_path / "m.skops")
    assert sorted(found) == sorted([*SKOPS_TRUSTED_TYPES, "torch.device"])
    loaded = sio.load(tmp_path / "m.skops", trusted=found)
    assert loaded.device == torch.device("cpu")
    np.testing.assert_array_equal(loaded.predict(X), m.predict(X))
