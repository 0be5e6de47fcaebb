"""The pure torch module: an MLP that maps ``x`` to mixture parameters.

The network only *builds* parameters. All density computations live in
:mod:`skmdn._mixture`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from . import _kernels
from ._utils import cpu_fast_path

__all__ = ["IN_PLACE_ACTIVATIONS", "NOISE_TYPES", "MDNNetwork", "MixtureParams"]

NOISE_TYPES = ("diagonal", "isotropic", "isotropic_across", "fixed", "full")

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "logistic": nn.Sigmoid,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}


# In-place forward of the activations that have one, without autograd: for
# inference and for the hand-written training step (skmdn._backprop).
IN_PLACE_ACTIVATIONS = {
    nn.Tanh: _kernels.tanh_,
    nn.Sigmoid: torch.Tensor.sigmoid_,
    nn.ReLU: torch.Tensor.relu_,
}


class MixtureParams(NamedTuple):
    """Parameters of a batch of Gaussian mixtures (torch tensors).

    Attributes
    ----------
    log_weights : Tensor of shape (n, K)
        Log mixture weights (normalised by ``log_softmax``).
    means : Tensor of shape (n, K, d)
        Component means.
    scales : Tensor of shape (n, K, d) or None
        Standard deviations of diagonal components (every noise type but
        ``'full'``).
    scale_tril : Tensor of shape (n, K, d, d) or None
        Lower Cholesky factors with a positive diagonal (``'full'`` only).
    """

    log_weights: torch.Tensor
    means: torch.Tensor
    scales: torch.Tensor | None
    scale_tril: torch.Tensor | None


def _n_scale_outputs(noise_type: str, n_components: int, n_outputs: int) -> int:
    return {
        "diagonal": n_components * n_outputs,
        "isotropic": n_components,
        "isotropic_across": 1,
        "fixed": 0,
        "full": n_components * n_outputs * (n_outputs + 1) // 2,
    }[noise_type]


class MDNNetwork(nn.Module):
    """MLP trunk and one fused linear head for all mixture parameters.

    Parameters
    ----------
    n_features : int
        Input dimension.
    n_outputs : int
        Target dimension ``d``.
    n_components : int
        Number of mixture components ``K``.
    hidden_layer_sizes : tuple of int
        Widths of the hidden layers.
    activation : str
        Hidden activation, a key of ``_ACTIVATIONS``.
    noise_type : str
        One of :data:`NOISE_TYPES`.
    min_scale : float
        Floor added to every standard deviation (and Cholesky diagonal).
    fixed_scale : sequence of float or None
        Per-output standard deviation for ``noise_type='fixed'``.
    dtype : torch.dtype or None, default=None
        Of the parameters and of ``fixed_scale`` (None: torch's default for
        the parameters, float64 for ``fixed_scale``); on the CPU. Building in
        the dtype wanted saves the pass of a later ``.to(dtype)``.
    """

    def __init__(
        self,
        n_features: int,
        n_outputs: int,
        n_components: int,
        hidden_layer_sizes: tuple[int, ...],
        activation: str,
        noise_type: str,
        min_scale: float,
        fixed_scale: tuple[float, ...] | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.n_outputs = n_outputs
        self.n_components = n_components
        self.noise_type = noise_type
        self.min_scale = float(min_scale)
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden_layer_sizes:
            layers += [_linear(width, size, dtype), _ACTIVATIONS[activation]()]
            width = size
        self.trunk = nn.Sequential(*layers)
        K, d = n_components, n_outputs
        self._n_scale = _n_scale_outputs(noise_type, K, d)
        self.head = _linear(width, K + K * d + self._n_scale, dtype)
        if noise_type == "fixed":
            if fixed_scale is None:
                raise ValueError("noise_type='fixed' needs fixed_scale.")
            self.register_buffer(
                "fixed_scale",
                torch.tensor(fixed_scale, dtype=dtype or torch.float64, device="cpu"),
            )
        if noise_type == "full":
            rows, cols = torch.tril_indices(d, d, device="cpu")
            self.register_buffer("tril_flat_index", rows * d + cols, persistent=False)
            self.register_buffer("tril_is_diag", rows == cols, persistent=False)

    def reset_parameters(
        self,
        generator: torch.Generator,
        mean_init: torch.Tensor | None = None,
        scale_init: float = 1.0,
    ) -> None:
        """Initialise every weight from ``generator`` (no global RNG is used).

        Hidden layers get weights and biases uniform on
        ``(-1/sqrt(fan_in), 1/sqrt(fan_in))``, ``torch.nn.Linear``'s default.
        Against Glorot-uniform weights and zero biases (scikit-learn's MLP
        weights, this estimator's choice until 2026-12): a 1-feature input
        gets weights of +-1 instead of +-0.3 and units centred apart, not all
        at 0, so the network starts non-linear where the data are. Measured
        (``benchmarks/README.md``): inverse sine excess NLL 0.149 against
        0.171, robot arm 0.679 against 0.770, sine with 1e5 rows -1.175
        against -1.135 after 30 epochs; on the UCI sets within noise except
        power and protein (better) and wine (worse, its integer target). The
        head starts with small weights, so that at initialisation the
        components sit at ``mean_init`` (shape (K, d)) with equal weights and
        standard deviation ``scale_init``.
        """
        with torch.no_grad():
            for module in self.trunk:
                if isinstance(module, nn.Linear):
                    bound = 1.0 / math.sqrt(module.in_features)
                    module.weight.uniform_(-bound, bound, generator=generator)
                    module.bias.uniform_(-bound, bound, generator=generator)
            bound = math.sqrt(6.0 / (self.head.in_features + self.head.out_features))
            self.head.weight.uniform_(-bound, bound, generator=generator)
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
            K, d = self.n_components, self.n_outputs
            if mean_init is not None:
                self.head.bias[K : K + K * d] = mean_init.reshape(-1).to(self.head.bias)
            raw = _inverse_softplus(max(scale_init - self.min_scale, 1e-3))
            scale_bias = self.head.bias[K + K * d :]
            if self.noise_type == "full":
                scale_bias.view(K, -1)[:, self.tril_is_diag] = raw
            else:
                scale_bias.fill_(raw)

    def head_outputs(
        self, x: torch.Tensor, contiguous_logits: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw head outputs for a batch ``x``: ``(logits, means, raw_scales)``.

        ``logits`` has shape (n, K) and ``means`` (n, K, d). ``raw_scales``
        are the pre-softplus scales: (n, K, d) for ``'diagonal'``, (n, K, 1)
        for ``'isotropic'``, (n, 1, 1) for ``'isotropic_across'``, (n, K, 0)
        for ``'fixed'`` and (n, K, d (d + 1) / 2) Cholesky entries for
        ``'full'``. ``contiguous_logits``: as for :meth:`split_head`.
        """
        h = self.features(x)
        if torch.is_grad_enabled():
            return self.split_head(self.head(h), contiguous_logits)
        return self.split_head(_head_affine(h, self.head), contiguous_logits)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's output for ``x``: the last hidden layer's activations.

        tanh goes through :mod:`skmdn._kernels` (torch's own is several times
        slower on AMD processors). Without autograd (inference) a linear layer
        is ``mm`` then an in-place bias, not ``addmm``, whose broadcast copy
        of the bias made the three layers 6.0 instead of 3.3 ms on 16384 rows
        (float32, one thread, AMD EPYC; ``benchmarks/README.md``), and every
        activation overwrites the fresh output of the layer before it.
        """
        if torch.is_grad_enabled():
            for module in self.trunk:
                x = _kernels.tanh(x) if type(module) is nn.Tanh else module(x)
            return x
        for module in self.trunk:
            kind = type(module)
            if kind is nn.Linear:
                x = _affine(x, module)
            elif kind in IN_PLACE_ACTIVATIONS:
                IN_PLACE_ACTIVATIONS[kind](x)
            else:
                x = module(x)
        return x

    def split_head(
        self, out: torch.Tensor, contiguous_logits: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Split the head's output (n, n_head) as :meth:`head_outputs` returns
        it (``contiguous_logits=False``: the logits as a view of ``out``)."""
        n = out.shape[0]
        K, d = self.n_components, self.n_outputs
        # One split (its backward is one cat) rather than three slices.
        logits, means, raw = out.split((K, K * d, self._n_scale), dim=-1)
        # Contiguous copies: elementwise kernels on column slices of ``out``
        # take a strided path that is ten times slower (softplus: 115 us
        # against 10 us on 256 rows, measured).
        raw = raw.contiguous().view(n, *self.raw_scale_shape())
        if contiguous_logits:
            logits = logits.contiguous()
        return logits, means.reshape(n, K, d), raw

    def raw_scale_shape(self) -> tuple[int, int]:
        """Per-row shape of the raw scale outputs: (K, 1) for ``'isotropic'``,
        (1, 1) for ``'isotropic_across'``, else (K, -1) (-1: d for
        ``'diagonal'``, 0 for ``'fixed'``, d (d + 1) / 2 for ``'full'``)."""
        K = self.n_components
        shape = {"isotropic": (K, 1), "isotropic_across": (1, 1)}
        return shape.get(self.noise_type, (K, -1))

    def forward(self, x: torch.Tensor) -> MixtureParams:
        """Map a batch of inputs (n, n_features) to :class:`MixtureParams`.

        Without autograd (inference) ``means`` is a view of the head's output
        and ``log_weights`` the transpose of a contiguous (K, n) tensor.
        """
        grad = torch.is_grad_enabled()
        logits, means, raw = self.head_outputs(x, contiguous_logits=grad)
        n, K, d = means.shape
        log_weights = _log_softmax_rows(logits)
        if self.noise_type == "full":
            flat = torch.where(self.tril_is_diag, F.softplus(raw) + self.min_scale, raw)
            tril = flat.new_zeros(n, K, d * d)
            tril[..., self.tril_flat_index] = flat
            return MixtureParams(log_weights, means, None, tril.reshape(n, K, d, d))
        if self.noise_type == "fixed":
            scales = self.fixed_scale.to(means.dtype).expand(n, K, d)
        else:
            scales = (F.softplus(raw) + self.min_scale).expand(n, K, d)
        return MixtureParams(log_weights, means, scales, None)

    def locations(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log_weights, means)`` of :meth:`forward` without the scales, for
        inference only (no autograd): what the mixture's mean and approximate
        mode need. The head's product skips the scale columns, and the
        softplus and the conversion of the scales are not done at all (16384
        rows, float32, one thread: 10-18 % of ``predict``'s time per chunk,
        measured; ``benchmarks/README.md``).
        """
        K, d = self.n_components, self.n_outputs
        out = _head_affine(self.features(x), self.head, K * (1 + d))
        logits, means = out.split((K, K * d), dim=-1)
        return _log_softmax_rows(logits), means.reshape(len(out), K, d)


def _log_softmax_rows(logits: torch.Tensor) -> torch.Tensor:
    """``log_softmax`` of each row of ``logits`` (n, K), taken over axis 0 of
    the transpose: vectorised across rows, 2.5x faster than along a last axis
    of a few components (measured). log_softmax makes its input contiguous:
    from the head's output that is one copy (a contiguous copy of the logits
    first made it two: 16384 rows, K = 5, float32, 534 against 311 us with
    the move to float64)."""
    return F.log_softmax(logits.t(), dim=0).t()


@functools.cache
def _onednn_linear() -> Callable | None:
    """oneDNN's inner product for dense float32 CPU tensors,
    ``torch.ops.mkldnn._linear_pointwise`` (the kernel ``torch.compile``'s
    CPU backend calls for linear layers), or None where this torch build
    lacks it or it fails on a probe.

    Inference products go through it because MKL's, which ``torch.mm``
    calls, ran slower at these shapes on AMD processors (16384 rows times a
    64 x 64 weight, float32, one thread, paired: 0.62-0.66 of MKL's time;
    the head, 15 to 35 columns, 0.64-0.81 of MKL's padded product) with the
    same bits in every shape compared (``benchmarks/README.md``).
    """
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        op = torch.ops.mkldnn._linear_pointwise
        # inputs 1 + 2**-20, which bfloat16 and TF32 round to 1, times ones:
        # every product and sum is exact in float32, so an op that rounds its
        # inputs to a reduced precision (a oneDNN fpmath mode) is refused too
        x = torch.full((3, 2), 1.0 + 2.0**-20)
        w, b = torch.ones(4, 2), torch.arange(4.0)
        works = torch.equal(op(x, w, b, "none", [], ""), torch.mm(x, w.t()) + b)
    except (AttributeError, RuntimeError):
        return None
    return op if works else None


def _product(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T + bias`` without autograd: oneDNN's inner product for
    float32 on the CPU (:func:`_onednn_linear`), else ``mm`` and an in-place
    bias."""
    if x.dtype == torch.float32 and cpu_fast_path(x.device):
        onednn = _onednn_linear()
        if onednn is not None:
            return onednn(x, weight, bias, "none", [], "")
    return torch.mm(x, weight.t()).add_(bias)


def _affine(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """``layer(x)`` without autograd (:func:`_product`; see features)."""
    return _product(x, layer.weight, layer.bias)


# Float32 products with few output columns ran several times slower per column
# unless the count was a multiple of 16 (PyPI's torch, MKL, AMD EPYC: 16384
# rows times a 64 x N weight on one thread took 1373 us for N = 15 and 534 us
# for N = 16, 1023 us for N = 25 and 798 us for N = 32). Where oneDNN is not
# available, the head, whose width is set by K and d, gets zero rows up to the
# next multiple: the same dot products, so the same outputs to rounding
# (identical in the runs here).
_HEAD_COLUMNS = 16


def _head_affine(
    x: torch.Tensor, head: nn.Linear, n_out: int | None = None
) -> torch.Tensor:
    """``_affine(x, head)``, or its first ``n_out`` columns (the head's first
    ``n_out`` outputs).

    For float32 on the CPU through oneDNN (:func:`_product`), or where torch
    lacks it through MKL with a weight padded with zero rows to a multiple
    of :data:`_HEAD_COLUMNS`. Elsewhere the first columns come from the
    whole product: a product of fewer columns rounded differently (float64,
    MKL). (The float32 products of fewer columns, oneDNN's or padded to 16,
    32, 48 or 64, agreed bit for bit in the runs here.)
    """
    n_all = head.out_features
    n_out = n_all if n_out is None else n_out
    weight, bias = head.weight[:n_out], head.bias[:n_out]
    if x.dtype != torch.float32 or not cpu_fast_path(x.device):
        out = torch.mm(x, head.weight.t())
        return (out if n_out == n_all else out[:, :n_out]).add_(bias)
    width = -(-n_out // _HEAD_COLUMNS) * _HEAD_COLUMNS
    if _onednn_linear() is not None or width == n_out:
        return _product(x, weight, bias)
    padded = weight.new_zeros(width, head.in_features)
    padded[:n_out] = weight
    return torch.mm(x, padded.t())[:, :n_out].add_(bias)


def _linear(n_in: int, n_out: int, dtype: torch.dtype | None = None) -> nn.Linear:
    """A linear layer whose weights are left uninitialised.

    ``nn.Linear`` would draw its default initialisation from torch's global
    generator; :meth:`MDNNetwork.reset_parameters` initialises from a private
    one instead, so fitting never touches the global random state. Built as
    ``nn.Linear.__init__`` builds it, without its ``reset_parameters``:
    ``nn.utils.skip_init`` (a layer on the meta device, initialised there,
    then moved) took 160 us a layer against 20, most of the cost of building
    a network, which every ``fit`` and ``partial_fit`` call does.
    """
    layer = nn.Linear.__new__(nn.Linear)
    nn.Module.__init__(layer)
    layer.in_features, layer.out_features = n_in, n_out
    layer.weight = nn.Parameter(torch.empty(n_out, n_in, dtype=dtype, device="cpu"))
    layer.bias = nn.Parameter(torch.empty(n_out, dtype=dtype, device="cpu"))
    return layer


def _inverse_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))
