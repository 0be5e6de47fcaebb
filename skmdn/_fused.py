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

:func:`mlp_block` goes further: a whole training block (its rows' gather,
the forward pass, the loss, the backward pass) in one call that holds no
GIL, its products through the BLAS torch's own ``mm`` calls (MKL's
``sgemm_`` and ``dgemm_``, found in ``libtorch_cpu`` by :func:`blas_available`
and checked against torch; the same bits), each bias and activation in one
pass. Two blocks on two threads then never wait for each other, and a
block skips some 30 Python-level torch calls. It applies to tanh, relu and
identity networks on x86-64 with torch's MKL (PyPI's Linux builds); else
:class:`~skmdn._backprop.ManualBackprop` runs its torch path. A
:class:`BlockHelper` takes such blocks on another thread as they are posted,
its loop waiting for them spinning, so that the second of a pair starts
without waking a thread (:data:`HELPER` switches it off).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys
from collections.abc import Callable, Sequence

import torch

from ._network import _n_scale_outputs

try:
    from . import _cmixture
except ImportError:  # pragma: no cover - the install could not compile it
    _cmixture = None

__all__ = [
    "ACTIVATIONS",
    "BLOCKS",
    "ENABLED",
    "HELPER",
    "KINDS",
    "BlockHelper",
    "adam_step",
    "available",
    "blas_available",
    "block_applies",
    "diagonal_nll",
    "full_nll",
    "gather_rows",
    "helper_available",
    "mlp_block",
    "mlp_plan",
    "pack_columns",
]

# set to False to use torch's kernels even where the extension is built
ENABLED = True

# set to False to run training blocks through torch's products (and the
# compiled loss) even where the compiled block applies
BLOCKS = True

# set to False to run the second of two compiled blocks on a pool's worker
# through Python (as any other block) instead of a BlockHelper's loop
HELPER = True

# activation -> the compiled block's code
ACTIVATIONS = {"identity": 0, "tanh": 1, "relu": 2}

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


def _fixed_scale(kind: int, fixed_scale: torch.Tensor | None, d: int) -> torch.Tensor:
    """The d float64 scales a kernel reads for ``noise_type='fixed'`` (kind
    0), else the placeholder it does not read."""
    if kind != 0:
        return _NO_FIXED_SCALE
    fixed = fixed_scale.to(torch.float64, copy=True).reshape(-1).expand(d)
    return fixed.contiguous()


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
    fixed = _fixed_scale(kind, fixed_scale, d)
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


def _gather_args(
    caller: str,
    packed: torch.Tensor,
    index: torch.Tensor | None,
    rows: slice,
    x_t: torch.Tensor,
    rest_t: torch.Tensor,
) -> tuple[int, int, int, int, int, int]:
    """The checked ``(packed, C, N, index, start, n)`` addresses and sizes of
    a gather of the rows ``packed[index[rows]]`` into ``x_t`` and ``rest_t``
    (see :func:`gather_rows`)."""
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
            f"{caller}: rows must be a slice of step 1 and index a 1-D "
            f"int64 tensor of stride 1 on {packed.device}."
        )
    N, C = packed.shape
    start, stop, _ = rows.indices(N if index is None else index.shape[0])
    n, F = max(stop - start, 0), x_t.shape[0]
    _require(
        caller,
        packed,
        [
            ("packed", packed, (N, C)),
            ("x_t", x_t, (F, n)),
            ("rest_t", rest_t, (C - F, n)),
        ],
    )
    if index is None:
        return packed.data_ptr(), C, N, 0, start, n
    return packed.data_ptr(), C, N, index[start:stop].data_ptr(), 0, n


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
    address, C, N, index_address, start, n = _gather_args(
        "gather_rows", packed, index, rows, x_t, rest_t
    )
    _cmixture.gather_rows(
        address,
        C,
        N,
        index_address,
        start,
        n,
        x_t.shape[0],
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


# --------------------------------------------------------- the whole block
_blas: bool | None = None  # found and checked (None: not looked for yet)


def _blas_addresses() -> tuple[int, int] | None:
    """The addresses of ``sgemm_`` and ``dgemm_`` in torch's own CPU library
    (the BLAS its ``mm`` calls: MKL in PyPI's x86-64 Linux builds), or None
    (also where that BLAS is not MKL)."""
    path = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    if not os.path.exists(path):
        return None
    try:
        lib = ctypes.CDLL(path)  # loaded already: the same handle
        # MKL only: its thread count per calling thread is torch's setting
        # (torch.set_num_threads), which the training blocks keep at one
        lib.MKL_Get_Max_Threads  # noqa: B018 - AttributeError where absent
        names = ("sgemm_", "dgemm_")
        return tuple(ctypes.cast(getattr(lib, n), ctypes.c_void_p).value for n in names)
    except (OSError, AttributeError):
        return None


def _find_blas() -> bool:
    """Hand the BLAS to the extension and check a product in each dtype
    against torch's; False (and the extension left without one) when
    anything is missing or wrong."""
    if (
        _cmixture is None
        or not hasattr(_cmixture, "mlp_block")
        or sys.byteorder != "little"  # the sizes' 64-bit ints, read as 32
        or platform.machine() not in ("x86_64", "AMD64")
    ):
        return False
    addresses = _blas_addresses()
    if addresses is None or not all(addresses):
        return False
    _cmixture.set_blas(*addresses)
    for dtype in (torch.float32, torch.float64):
        a = torch.arange(12, dtype=dtype).reshape(3, 4) - 5
        b = torch.arange(20, dtype=dtype).reshape(5, 4) - 7  # as its transpose
        c = torch.empty(3, 5, dtype=dtype)
        f64 = dtype == torch.float64
        _cmixture.mm(
            f64, 3, 5, 4, a.data_ptr(), False, b.data_ptr(), True, c.data_ptr()
        )
        if not torch.equal(c, a @ b.t()):  # integers: exact either way
            _cmixture.set_blas(0, 0)
            return False
    return True


def blas_available() -> bool:
    """True when the extension has torch's BLAS (looked for once):
    :func:`mlp_block` can run."""
    global _blas
    if _blas is None:
        _blas = _find_blas()
    return _blas


def block_applies(like: torch.Tensor, activation: str) -> bool:
    """True when :func:`mlp_block` can run a network of ``activation`` on
    tensors like ``like``: :data:`BLOCKS` and :data:`ENABLED` set, float32
    or float64 on the CPU, torch's BLAS found, and for tanh a vector tanh in
    the build (glibc's; its scalar tanh would be slower than torch's path)."""
    return (
        BLOCKS
        and activation in ACTIVATIONS
        and _applies(like)
        and (activation != "tanh" or bool(_cmixture.VECTOR_MATH))
        and blas_available()
    )


def mlp_plan(
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    acts: Sequence[torch.Tensor],
    deltas: Sequence[torch.Tensor],
    first: torch.Tensor,
) -> tuple:
    """The checked addresses of a block's tensors for :func:`mlp_block`.

    ``params`` and ``grads`` are each layer's weight and bias (trunk, then
    head) and their gradients; ``acts`` and ``deltas`` the feature-major
    activations and their gradients, ``acts[0]`` the input (``deltas[0]`` is
    not used); ``first`` layer 0's weight gradient transposed: the tensors
    of :class:`~skmdn._backprop.ManualBackprop`. A ValueError for a tensor
    of the wrong shape, dtype or layout.
    """
    like = acts[0]
    widths = tuple(a.shape[0] for a in acts)
    n, L = like.shape[1], len(acts) - 1
    if len(params) != 2 * L or len(grads) != 2 * L or len(deltas) != L + 1:
        raise ValueError(f"mlp_plan: {L} layers need {2 * L} params and grads.")
    shapes = [
        s for i in range(L) for s in ((widths[i + 1], widths[i]), (widths[i + 1],))
    ]
    named = [
        (f"params[{i}]", t, s)
        for i, (t, s) in enumerate(zip(params, shapes, strict=True))
    ]
    named += [
        (f"grads[{i}]", t, s)
        for i, (t, s) in enumerate(zip(grads, shapes, strict=True))
    ]
    named += [(f"acts[{i}]", t, (widths[i], n)) for i, t in enumerate(acts)]
    named += [(f"deltas[{i}]", deltas[i], (widths[i], n)) for i in range(1, L + 1)]
    named.append(("first", first, (widths[0], widths[1])))
    _require("mlp_plan", like, named)
    return (
        widths,
        tuple(t.data_ptr() for t in params),
        tuple(t.data_ptr() for t in grads),
        tuple(t.data_ptr() for t in acts),
        (0, *(t.data_ptr() for t in deltas[1:])),
        first.data_ptr(),
    )


def mlp_block(
    plan: tuple,
    like: torch.Tensor,
    activation: str,
    y: torch.Tensor,
    weights: torch.Tensor,
    n_components: int,
    noise_type: str,
    min_scale: float,
    fixed_scale: torch.Tensor | None = None,
    constant_weight: float = 1.0,
    gather: tuple[torch.Tensor, torch.Tensor | None, slice, int, torch.Tensor]
    | None = None,
    helper: BlockHelper | None = None,
) -> torch.Tensor | None:
    """A whole training block in one compiled call without the GIL: the
    forward pass, the loss of :func:`diagonal_nll` (or :func:`full_nll`) and
    the backward pass of :class:`~skmdn._backprop.ManualBackprop`, the
    gradients written to the plan's.

    ``plan`` comes from :func:`mlp_plan`, ``like`` is its ``acts[0]``; call
    only where :func:`block_applies`. ``y`` (d, n) and ``weights`` (n,) are
    the block's targets and weights; with ``gather = (packed, index, rows,
    n_total, rest)`` the block first gathers its rows as :func:`gather_rows`
    does, into ``acts[0]`` and ``rest`` (d + 1, n), of which ``y`` and
    ``weights`` must be the rows, and divides the weights by ``n_total``.
    Returns the loss; with ``helper``, the block is posted to it instead
    and None returned (:meth:`BlockHelper.wait` gives the loss). The
    products are torch's own BLAS calls (the same bits as
    :func:`torch.mm`); the tanh and the bias gradients' sums differ from
    torch's path by rounding.
    """
    widths = plan[0]
    d, n = y.shape
    K = n_components
    rows = K + K * d + _n_scale_outputs(noise_type, K, d)
    if rows != widths[-1] or n != like.shape[1]:
        raise ValueError(
            f"mlp_block: a head of {widths[-1]} rows and {like.shape[1]} "
            f"columns does not fit {K} components of {d} outputs, {n} rows."
        )
    f64 = like.dtype == torch.float64
    packed_args: tuple[int, ...] = (0, 0, 0, 0, 0, 1)
    _require("mlp_block", like, [("y", y, (d, n)), ("weights", weights, (n,))])
    if gather is not None:
        packed, index, sl, n_total, rest = gather
        if y.data_ptr() != rest.data_ptr() or weights.data_ptr() != rest[d].data_ptr():
            raise ValueError("mlp_block: y and weights must be rest[:d] and rest[d].")
        *args, _ = _gather_args("mlp_block", packed, index, sl, like, rest)
        packed_args = (*args, int(n_total))
    kind = 4 if noise_type == "full" else KINDS[noise_type]
    fixed = _fixed_scale(kind, fixed_scale, d)
    args = (
        f64,
        ACTIVATIONS[activation],
        n,
        *plan,
        y.data_ptr(),
        weights.data_ptr(),
        K,
        d,
        kind,
        fixed.data_ptr(),
        float(min_scale),
        float(constant_weight),
        *packed_args,
    )
    if helper is not None:  # the tensors read stay alive until its wait
        helper.post(args, like.dtype, (y, weights, fixed, gather))
        return None
    return torch.scalar_tensor(_cmixture.mlp_block(*args), dtype=like.dtype)


class BlockHelper:
    """Runs every other block of a step on another thread, handed over
    without the GIL and without waking a sleeping thread (``helper_serve``
    in ``_cmixture.c``).

    A step posts a block (:func:`mlp_block` with ``helper``), runs the one
    before it on the calling thread, then waits (:meth:`wait`). The loop
    that takes posted blocks runs on a thread that ``start`` provides
    (``start(fn)`` must call ``fn()`` on another thread, as a pool's
    ``submit`` does): it is started when a block is posted and no loop
    runs, waits for the next block spinning (from 20 us on yielding its
    core to whatever else is runnable there) and returns to its thread's
    owner after ``idle`` seconds without one, or at :meth:`stop`.
    :meth:`wait` runs the block itself if the loop has not taken it yet (not
    started, or slowed by another process), so a post never waits for a
    thread. Use it from one thread at a time.
    """

    def __init__(
        self, start: Callable[[Callable[[], None]], object], idle: float = 0.002
    ) -> None:
        self._capsule = _cmixture.helper_new(round(idle * 1e9))
        self._start = start
        self._posted: tuple[torch.dtype, object] | None = None

    def post(self, args: tuple, dtype: torch.dtype, keep: object) -> None:
        """Hand the block of :func:`mlp_block`'s ``args`` to the loop; its
        loss will be of ``dtype``. ``keep`` holds the tensors the block
        reads whose owner may drop them (a temporary of the caller's): they
        stay alive until the block is done."""
        self.settle()
        self._posted = (dtype, keep)
        try:
            running = _cmixture.helper_post(self._capsule, *args)
        except Exception:  # refused: nothing posted
            self._posted = None
            raise
        if not running:
            self._start(functools.partial(_cmixture.helper_serve, self._capsule))

    def wait(self) -> torch.Tensor:
        """The posted block's loss, once it is done (its gradients written);
        an IndexError for a row outside the data, as :func:`mlp_block`."""
        if self._posted is None:
            raise RuntimeError("BlockHelper.wait: no block was posted.")
        dtype = self._posted[0]
        try:
            loss = _cmixture.helper_wait(self._capsule)
        finally:
            self._posted = None
        return torch.scalar_tensor(loss, dtype=dtype)

    def settle(self) -> None:
        """Finish a block posted and never waited for (an interrupt came
        between the two), discarding its loss."""
        if self._posted is not None:
            try:
                self.wait()
            except (IndexError, RuntimeError):
                pass  # its error belonged to the step it was abandoned in

    def stop(self) -> None:
        """Finish any posted block, then let the loop, waiting for the next,
        return to its thread's owner now (before the thread is given other
        work or shut down)."""
        self.settle()
        _cmixture.helper_stop(self._capsule)


def helper_available() -> bool:
    """True when the extension has the block helper and :data:`HELPER`
    is set (it spins in C: GCC or Clang, not Windows)."""
    return HELPER and _cmixture is not None and hasattr(_cmixture, "helper_new")
