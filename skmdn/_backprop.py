"""A training step's forward and backward pass written out by hand.

Autograd allocates every activation and gradient afresh at each step. At
batch 8192 those are megabyte-sized buffers, which the C allocator returns to
the operating system and faults in again on the next step (about 1000 page
faults per step, measured). :class:`ManualBackprop` keeps one workspace per
batch size, applies the activations in place, runs feature-major (the
fastest layout of the products here) and writes each gradient straight into
the parameter's ``.grad`` (the optimiser's flat buffer): no allocation of
batch size in the steady state and no autograd graph. Batch 8192, 1 thread:
7.8 against 6.9 ms per step; batch 256: 1.05 against 0.67 ms (synth10,
``benchmarks/speed.py``). It computes the same loss and gradients as
autograd through :func:`~skmdn._training.batch_loss` (tested to rounding).
"""

from __future__ import annotations

import torch
from torch import nn

from ._mixture import diagonal_nll_backward, diagonal_nll_forward
from ._network import IN_PLACE_ACTIVATIONS, MDNNetwork

__all__ = ["ManualBackprop"]

_aten = torch.ops.aten


def _tanh_backward(grad: torch.Tensor, out: torch.Tensor) -> None:
    _aten.tanh_backward.grad_input(grad, out, grad_input=grad)


def _sigmoid_backward(grad: torch.Tensor, out: torch.Tensor) -> None:
    _aten.sigmoid_backward.grad_input(grad, out, grad_input=grad)


def _relu_backward(grad: torch.Tensor, out: torch.Tensor) -> None:
    _aten.threshold_backward.grad_input(grad, out, 0, grad_input=grad)


# activation module -> in-place backward from the output (the in-place
# forward is the network's own, IN_PLACE_ACTIVATIONS)
_BACKWARD = {
    nn.Tanh: _tanh_backward,
    nn.Sigmoid: _sigmoid_backward,
    nn.ReLU: _relu_backward,
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
        self.forward_act = IN_PLACE_ACTIVATIONS.get(type(act))
        self.backward_act = _BACKWARD.get(type(act))
        self._workspace: dict[int, tuple[list[torch.Tensor], ...]] = {}

    @staticmethod
    def supports(network: MDNNetwork) -> bool:
        """True for diagonal-family noise and tanh, logistic, relu or identity."""
        kinds = (*_BACKWARD, nn.Identity, nn.Linear)
        return network.noise_type != "full" and all(
            type(m) in kinds for m in network.trunk
        )

    def _buffers(self, x: torch.Tensor) -> tuple[list[torch.Tensor], ...]:
        """Transposed activations and gradients for ``len(x)`` rows, made once.

        ``acts[0]`` is ``x`` transposed; ``acts[i]`` (i >= 1) is the output
        of layer ``i - 1`` and ``grads[i]`` the gradient with respect to it.
        """
        n = x.shape[0]
        if n not in self._workspace:
            if len(self._workspace) >= 4:  # a stream of sizes: keep a few
                self._workspace.clear()
            widths = [self.linears[0].in_features]
            widths += [m.out_features for m in self.linears]
            acts = [x.new_empty(w, n) for w in widths]
            grads = [x.new_empty(0)] + [x.new_empty(w, n) for w in widths[1:]]
            first = x.new_empty(widths[0], widths[1])  # layer 0's weight grad^T
            self._workspace[n] = (acts, grads, [x.new_ones(n), first])
        return self._workspace[n]

    def _split(self, out_t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Views (logits, means, raw scales) of a transposed head output."""
        net = self.network
        K, d, n = net.n_components, net.n_outputs, out_t.shape[1]
        raw = None
        if net.noise_type != "fixed":
            raw = out_t[K + K * d :].view(*net.raw_scale_shape(), n)
        return out_t[:K], out_t[K : K + K * d].view(K, d, n), raw

    @torch.no_grad()
    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """Weighted mean NLL of a batch (``weights`` sum to one); sets ``.grad``.

        Everything runs feature-major, one column per row of ``x``: of the
        layouts measured at batch 8192 (2 threads), this one gives the
        fastest products, ``mm`` then an in-place bias beats ``addmm``, and the
        mixture loss reads its parameters as contiguous row slices.
        """
        net = self.network
        acts, grads, (ones, first) = self._buffers(x)
        acts[0].copy_(x.t())
        last = len(self.linears) - 1
        for i, layer in enumerate(self.linears):
            out = acts[i + 1]
            torch.mm(layer.weight, acts[i], out=out).add_(layer.bias[:, None])
            if i < last and self.forward_act is not None:
                self.forward_act(out)
        logits, means, raw = self._split(acts[-1])
        fixed = net.fixed_scale if raw is None else None
        loss, saved = diagonal_nll_forward(
            logits, means, raw, y.t().contiguous(), weights, net.min_scale, fixed
        )
        diagonal_nll_backward(saved, 1.0, out=self._split(grads[-1]))
        for i in range(last, -1, -1):
            layer, grad = self.linears[i], grads[i + 1]
            if i < last and self.backward_act is not None:
                self.backward_act(grad, acts[i + 1])
            if i > 0:
                torch.mm(grad, acts[i].t(), out=layer.weight.grad)
                torch.mm(layer.weight.t(), grad, out=grads[i])
            else:  # a thin input: (x^T g) is the faster product here
                layer.weight.grad.copy_(torch.mm(acts[0], grad.t(), out=first).t())
            torch.mv(grad, ones, out=layer.bias.grad)
        return loss
