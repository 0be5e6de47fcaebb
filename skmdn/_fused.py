"""The mixture loss and its gradient in one compiled call.

:func:`~skmdn._mixture.diagonal_nll_forward` and
:func:`~skmdn._mixture.diagonal_nll_backward` run about 35 small torch
kernels on a training block (their ``full`` twins one per entry of the
Cholesky factor, more); each holds the GIL while it is dispatched, so the
two blocks of a large batch wait for each other there, and at batch 256
their dispatch is most of the loss's time. The optional C extension
``skmdn._cmixture`` (``skmdn/_cmixture.c``, built by ``setup.py`` where a C
compiler is found) computes the same loss and gradients in one pass over
tiles of rows, without the GIL (numbers in ``benchmarks/README.md``):
:func:`diagonal_nll` for the diagonal noise types, :func:`full_nll` for
``noise_type='full'``. Their results agree with torch's to rounding
(tested); where the extension is missing, the tensors are not float32 or
float64 on the CPU, or :data:`ENABLED` is False, they return None and the
caller uses torch. :func:`gather_rows` copies a training block's rows out of
the packed data, transposed, with the reads of the next rows started early
(the same bits as ``index_select`` and two transposing copies, about 3x
faster on rows that are not in cache); :func:`adam_step` is
:class:`~skmdn._training.FlatAdam`'s update in one pass instead of eight
torch operations (the same to rounding); :func:`pack_columns` standardises
the training data into its packed rows in one pass (the same bits as
torch's chunked operations, about 4x faster).
"""

from __future__ import annotations

import torch

from ._network import _n_scale_outputs

try:
    from . import _cmixture
except ImportError:  # pragma: no cover - the install could not compile it
    _cmixture = None

__all__ = [
    "ENABLED",
    "KINDS",
    "adam_step",
    "available",
    "diagonal_nll",
    "full_nll",
    "gather_rows",
    "pack_columns",
]

# set to False to use torch's kernels even where the extension is built
ENABLED = True

# noise type -> the kernel's layout of the raw scale rows
KINDS = {"fixed": 0, "isotropic_across": 1, "isotropic": 2, "diagonal": 3}

# the fixed-scale address the kernel gets (and does not read) for the other
# noise types: made once, not at every call
_NO_FIXED_SCALE = torch.zeros(1, dtype=torch.float64)


def available() -> bool:
    """True when the compiled loss is built and :data:`ENABLED`."""
    return _cmixture is not None and ENABLED


def _applies(out: torch.Tensor) -> bool:
    """True when the compiled kernels can take a head output like ``out``."""
    return (
        available()
        and out.dtype in (torch.float32, torch.float64)
        and out.device.type == "cpu"
    )


def _require(
    caller: str, like: torch.Tensor, tensors: list[tuple[str, torch.Tensor, tuple]]
) -> None:
    """A ValueError unless each ``(name, tensor, shape)`` is a contiguous
    tensor of that shape with ``like``'s dtype and device: what a kernel
    reading it through its address needs."""
    for name, t, shape in tensors:
        if (
            t.shape != shape
            or t.dtype != like.dtype
            or t.device != like.device
            or not t.is_contiguous()
        ):
            raise ValueError(
                f"{caller}: {name} must be a contiguous {like.dtype} tensor of "
                f"shape {shape} on {like.device}; got {t.dtype} {tuple(t.shape)}."
            )


def _check(
    caller: str,
    out: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    grad: torch.Tensor,
    rows: int,
) -> None:
    """:func:`_require` for a loss kernel's four tensors."""
    d, n = y.shape
    _require(
        caller,
        out,
        [
            ("out", out, (rows, n)),
            ("grad", grad, (rows, n)),
            ("y", y, (d, n)),
            ("weights", weights, (n,)),
        ],
    )


def diagonal_nll(
    out: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    grad: torch.Tensor,
    n_components: int,
    noise_type: str,
    min_scale: float,
    fixed_scale: torch.Tensor | None = None,
    constant_weight: float = 1.0,
) -> torch.Tensor | None:
    """The loss of :func:`~skmdn._mixture.diagonal_nll_forward`, its gradient
    written to ``grad``; None where the compiled kernel does not apply.

    Feature-major, as :class:`~skmdn._backprop.ManualBackprop` holds them:
    ``out`` is the head's output (P, n), rows ``[logits (K), means (K, d),
    raw scales]``, ``y`` (d, n), ``weights`` (n,); ``grad`` (P, n) receives
    the gradient of the loss with respect to ``out``. ``fixed_scale`` (1 or
    d values) is the scale of ``noise_type='fixed'``.
    """
    kind = KINDS.get(noise_type)
    if kind is None or not _applies(out):
        return None
    d, n = y.shape
    K = n_components
    rows = K + K * d + _n_scale_outputs(noise_type, K, d)
    _check("diagonal_nll", out, y, weights, grad, rows)
    fixed = _NO_FIXED_SCALE
    if kind == 0:
        fixed = fixed_scale.to(torch.float64, copy=True).reshape(-1).expand(d)
        fixed = fixed.contiguous()
    loss = _cmixture.diag_nll(
        out.data_ptr(),
        y.data_ptr(),
        weights.data_ptr(),
        grad.data_ptr(),
        n,
        K,
        d,
        kind,
        fixed.data_ptr(),
        float(min_scale),
        float(constant_weight),
        out.dtype == torch.float64,
    )
    return torch.scalar_tensor(loss, dtype=out.dtype)


def full_nll(
    out: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    grad: torch.Tensor,
    n_components: int,
    min_scale: float,
    constant_weight: float = 1.0,
) -> torch.Tensor | None:
    """:func:`diagonal_nll` for ``noise_type='full'``: the loss of
    :func:`~skmdn._mixture.full_nll_forward`, its gradient written to
    ``grad``. The raw rows of ``out`` hold each component's lower triangle
    row by row (its diagonal through softplus + ``min_scale``)."""
    if not _applies(out):
        return None
    d, n = y.shape
    K = n_components
    _check(
        "full_nll", out, y, weights, grad, K + K * d + _n_scale_outputs("full", K, d)
    )
    loss = _cmixture.full_nll(
        out.data_ptr(),
        y.data_ptr(),
        weights.data_ptr(),
        grad.data_ptr(),
        n,
        K,
        d,
        float(min_scale),
        float(constant_weight),
        out.dtype == torch.float64,
    )
    return torch.scalar_tensor(loss, dtype=out.dtype)


def gather_rows(
    packed: torch.Tensor,
    index: torch.Tensor | None,
    rows: slice,
    x_t: torch.Tensor,
    rest_t: torch.Tensor,
) -> bool:
    """Rows ``packed[index[rows]]`` (``packed[rows]`` when ``index`` is
    None), transposed: their first ``len(x_t)`` columns to ``x_t`` and the
    others to ``rest_t`` (feature-major, one column per row). False, with
    nothing written, where the compiled kernel does not apply.

    An IndexError for an index outside the rows of ``packed``; a ValueError
    for a tensor whose shape, dtype, device or layout does not fit.
    """
    if not _applies(packed):
        return False
    if rows.step not in (None, 1) or (
        index is not None
        and (
            index.dtype != torch.int64
            or index.device != packed.device
            or index.dim() != 1
            or index.stride(0) != 1
        )
    ):
        raise ValueError(
            "gather_rows: rows must be a slice of step 1 and index a 1-D "
            f"int64 tensor of stride 1 on {packed.device}."
        )
    N, C = packed.shape
    start, stop, _ = rows.indices(N if index is None else index.shape[0])
    n, F = max(stop - start, 0), x_t.shape[0]
    _require(
        "gather_rows",
        packed,
        [
            ("packed", packed, (N, C)),
            ("x_t", x_t, (F, n)),
            ("rest_t", rest_t, (C - F, n)),
        ],
    )
    address = 0 if index is None else index[start:stop].data_ptr()
    _cmixture.gather_rows(
        packed.data_ptr(),
        C,
        N,
        address,
        start if index is None else 0,
        n,
        F,
        x_t.data_ptr(),
        rest_t.data_ptr(),
        packed.dtype == torch.float64,
    )
    return True


def adam_step(
    flat: torch.Tensor,
    grad: torch.Tensor,
    decay: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    betas: tuple[float, float],
    bias2: float,
    step_size: float,
    eps: float,
) -> bool:
    """One update of :meth:`~skmdn._training.FlatAdam.step` in place:
    ``g = grad + decay * flat``, the moments ``exp_avg`` and ``exp_avg_sq``
    updated with ``betas``, then ``flat -= step_size * exp_avg /
    (sqrt(exp_avg_sq) / bias2 + eps)``. False, with nothing changed, where
    the compiled kernel does not apply; a ValueError for a tensor that is not
    like ``flat``."""
    if not _applies(flat):
        return False
    n = flat.numel()
    named = [("flat", flat), ("grad", grad), ("decay", decay)]
    named += [("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)]
    _require("adam_step", flat, [(name, t, (n,)) for name, t in named])
    _cmixture.adam(
        flat.data_ptr(),
        grad.data_ptr(),
        decay.data_ptr(),
        exp_avg.data_ptr(),
        exp_avg_sq.data_ptr(),
        n,
        float(betas[0]),
        float(betas[1]),
        float(bias2),
        float(step_size),
        float(eps),
        flat.dtype == torch.float64,
    )
    return True


def pack_columns(
    src: torch.Tensor,
    index: torch.Tensor | None,
    mean: torch.Tensor,
    scale: torch.Tensor,
    out: torch.Tensor,
) -> bool:
    """``out[i] = (src[index[i]] - mean) / scale`` (``src[i]`` when ``index``
    is None), computed in float64 and rounded once to ``out``'s dtype, as
    :func:`~skmdn._data.pack_rows` does it by chunks. ``src`` is a float32
    or float64 CPU tensor of any strides, ``mean`` and ``scale`` float64
    vectors of its width, ``out`` columns of the packed rows (unit column
    stride). False, with nothing written, where the compiled kernel does
    not apply; an IndexError for an index outside ``src``'s rows."""
    kinds = (torch.float32, torch.float64)
    if not (
        available()
        and src.dim() == 2
        and src.dtype in kinds
        and out.dtype in kinds
        and src.device.type == out.device.type == "cpu"
        and mean.dtype == scale.dtype == torch.float64
    ):
        return False
    N, width = src.shape
    n = N if index is None else index.shape[0]
    for name, t, ok in (
        ("mean", mean, mean.is_contiguous() and tuple(mean.shape) == (width,)),
        ("scale", scale, scale.is_contiguous() and tuple(scale.shape) == (width,)),
        ("out", out, tuple(out.shape) == (n, width) and out.stride(1) == 1),
        (
            "index",
            index,
            index is None
            or (
                index.dtype == torch.int64
                and index.dim() == 1
                and index.is_contiguous()
            ),
        ),
    ):
        if not ok:
            raise ValueError(
                f"pack_columns: {name} does not fit a source of {N} rows and "
                f"{width} columns; got {None if t is None else tuple(t.shape)}."
            )
    _cmixture.pack_columns(
        src.data_ptr(),
        N,
        width,
        src.stride(0),
        src.stride(1),
        src.dtype == torch.float64,
        0 if index is None else index.data_ptr(),
        n,
        mean.data_ptr(),
        scale.data_ptr(),
        out.data_ptr(),
        out.stride(0),
        out.dtype == torch.float64,
    )
    return True
