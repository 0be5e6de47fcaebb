"""The device parameter between fits, and models moved between machines.

There is no GPU here. Where a test needs the model to go to another device,
``'cuda'`` is resolved to torch's ``'meta'`` device (tensors with shapes and
no data, on which any attempt to read a value fails) and training is stopped
as it starts, which shows where every tensor of the step would live.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.test_faults import X, model, quiet_fit


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
