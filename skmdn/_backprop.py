"""A training step's forward and backward pass written out by hand.

Autograd allocates every activation and gradient afresh at each step. At
batch 8192 those are megabyte-sized buffers, which the C allocator hands back
to the operating system and faults in again, page by page, on the next step:
about 1000 page faults per step here, more time than the matrix products.
:class:`ManualBackprop` keeps one workspace per batch size, applies the
activations in place, and writes each gradient straight into the parameter's
``.grad`` (the optimiser's flat buffer): no allocation of batch size in the
steady state and no autograd graph. It computes the same loss and gradients as
autograd through :func:`~skmdn._training.batch_loss` (tested to rounding).
"""

from __future__ import annotations

import torch
from torch import nn

from ._mixture import diagonal_nll_backward, diagonal_nll_forward
from ._network import MDNNetwork

__all__ = ["ManualBackprop"]

_aten = torch.ops.aten


def _tanh_backward(grad: torch.Tensor, out: torch.Tensor) -> None:
    _aten.tanh_backward.grad_input(grad, out, grad_input=grad)


def _sigmoid_backward(grad: torch.Tensor, out: torch.Tensor) -> None:
    _aten.sigmoid_backward.grad_input(grad, out, grad_input=grad)


def _relu_backward(grad: torch.Tensor, out: torch.Tensor) -> None:
    _aten.threshold_backward.grad_input(grad, out, 0, grad_input=grad)


# activation module -> (in-place forward, in-place backward from the output)
_ACTIVATIONS = {
    nn.Tanh: (torch.Tensor.tanh_, _tanh_backward),
    nn.Sigmoid: (torch.Tensor.sigmoid_, _sigmoid_backward),
    nn.ReLU: (torch.Tensor.relu_, _relu_backward),
}


class ManualBackprop:
    """Loss and gradients of :func:`~skmdn._training.batch_loss`, by hand.

    Parameters
    ----------
    network : MDNNetwork
        A network that :meth:`supports` accepts, whose parameters have
        ``.grad`` tensors (as :class:`~skmdn._training.FlatAdam` binds them).

    Calling the object on a batch returns the loss (a scalar tensor) and
    overwrites every parameter's ``.grad`` with its gradient; there is no
    need to zero the gradients first.
    """

    def __init__(self, network: MDNNetwork) -> None:
        if not self.supports(network):
            raise ValueError("This network needs autograd (see supports).")
        self.network = network
        modules = list(network.trunk)
        self.linears = [m for m in modules if isinstance(m, nn.Linear)]
        self.linears.append(network.head)
        act = modules[1] if len(modules) > 1 else nn.Identity()
        self.forward_act, self.backward_act = _ACTIVATIONS.get(type(act), (None, None))
        self._workspace: dict[int, tuple[list[torch.Tensor], ...]] = {}

    @staticmethod
    def supports(network: MDNNetwork) -> bool:
        """True for diagonal-family noise and tanh, logistic, relu or identity."""
        kinds = (*_ACTIVATIONS, nn.Identity, nn.Linear)
        return network.noise_type != "full" and all(
            type(m) in kinds for m in network.trunk
        )

    def _buffers(self, x: torch.Tensor) -> tuple[list[torch.Tensor], ...]:
        """Activations and their gradients for ``len(x)`` rows, made once."""
        n = x.shape[0]
        if n not in self._workspace:
            if len(self._workspace) >= 4:  # a stream of sizes: keep a few
                self._workspace.clear()
            acts = [x.new_empty(n, m.out_features) for m in self.linears]
            grads = [x.new_empty(n, m.in_features) for m in self.linears[1:]]
            grads.append(x.new_empty(n, self.linears[-1].out_features))
            self._workspace[n] = (acts, grads, [x.new_ones(n)])
        return self._workspace[n]

    @torch.no_grad()
    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """Weighted mean NLL of a batch (``weights`` sum to one); sets ``.grad``."""
        net = self.network
        acts, grads, (ones,) = self._buffers(x)
        inputs = [x]
        last = len(self.linears) - 1
        for i, (layer, out) in enumerate(zip(self.linears, acts, strict=True)):
            torch.addmm(layer.bias, inputs[-1], layer.weight.t(), out=out)
            if i < last and self.forward_act is not None:
                self.forward_act(out)
            inputs.append(out)
        logits, means, raw = net.split_head(acts[-1])
        fixed = net.fixed_scale if net.noise_type == "fixed" else None
        loss, saved = diagonal_nll_forward(
            logits, means, None if fixed is not None else raw, y, weights,
            net.min_scale, fixed,
        )  # fmt: skip
        g_logits, g_means, g_raw = diagonal_nll_backward(saved, 1.0)
        n = x.shape[0]
        parts = [g_logits, g_means.reshape(n, -1)]
        if g_raw is not None:
            parts.append(g_raw.reshape(n, -1))
        grad = grads[-1]
        torch.cat(parts, dim=1, out=grad)
        for i in range(last, -1, -1):
            layer = self.linears[i]
            torch.mm(grad.t(), inputs[i], out=layer.weight.grad)
            torch.mv(grad.t(), ones, out=layer.bias.grad)
            if i == 0:
                break
            below = grads[i - 1]
            torch.mm(grad, layer.weight, out=below)
            if self.backward_act is not None:
                self.backward_act(below, inputs[i])
            grad = below
        return loss
