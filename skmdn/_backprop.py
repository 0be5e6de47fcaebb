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
Where the extension has torch's BLAS, the whole step is one compiled call
without the GIL (:func:`~skmdn._fused.mlp_block`). :class:`BlockedBackprop`
runs it on blocks of a large batch on worker threads, so that the result
does not depend on the number of threads; on two, every other compiled
block goes to a :class:`~skmdn._fused.BlockHelper`, whose loop waits for
it spinning instead of asleep.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import torch
from torch import nn

from . import _fused
from ._mixture import (
    diagonal_nll_backward,
    diagonal_nll_forward,
    full_nll_backward,
    full_nll_forward,
)
from ._network import IN_PLACE_ACTIVATIONS, MDNNetwork
from ._utils import SMALL_BATCH, one_torch_thread, torch_threads

__all__ = ["BlockStep", "BlockedBackprop", "ManualBackprop", "packed_rows"]

_aten = torch.ops.aten


def _tanh_backward(grad: torch.Tensor, out: torch.Tensor) -> None:
    _aten.tanh_backward.grad_input(grad, out, grad_input=grad)


def _sigmoid_backward(grad: torch.Tensor, out: torch.Tensor) -> None:
    _aten.sigmoid_backward.grad_input(grad, out, grad_input=grad)


def _relu_backward(grad: torch.Tensor, out: torch.Tensor) -> None:
    _aten.threshold_backward.grad_input(grad, out, 0, grad_input=grad)


# activation module -> the compiled block's name for it (_fused.ACTIVATIONS)
_COMPILED = {nn.Tanh: "tanh", nn.ReLU: "relu", nn.Identity: "identity"}

# activation module -> in-place backward from the output (the in-place
# forward is the network's own, IN_PLACE_ACTIVATIONS)
_BACKWARD = {
    nn.Tanh: _tanh_backward,
    nn.Sigmoid: _sigmoid_backward,
    nn.ReLU: _relu_backward,
}


def packed_rows(
    packed: torch.Tensor,
    index: torch.Tensor | None,
    rows: slice,
    n_features: int,
    n_total: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x, y, w / n_total)`` of the rows ``packed[index[rows]]``
    (``packed[rows]`` when ``index`` is None) of packed ``[x | y | w]`` rows,
    ``x`` the first ``n_features`` columns."""
    if index is None:
        part = packed[rows]
    else:
        part = packed.index_select(0, index[rows])
    return part[:, :n_features], part[:, n_features:-1], part[:, -1] / n_total


class ManualBackprop:
    """Loss and gradients of :func:`~skmdn._training.batch_loss`, by hand.

    Calling the object on a batch returns the loss (a scalar tensor) and
    overwrites every parameter's ``.grad`` with its gradient; there is no
    need to zero the gradients first.

    Parameters
    ----------
    network : MDNNetwork
        A network that :meth:`supports` accepts, whose parameters have
        ``.grad`` tensors (as :class:`~skmdn._training.FlatAdam` binds them).
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
        self.compiled_act = _COMPILED.get(type(act))
        self._params = [t for m in self.linears for t in (m.weight, m.bias)]
        self._workspace: dict[int, tuple[list, ...]] = {}

    @staticmethod
    def supports(network: MDNNetwork) -> bool:
        """True for the activations tanh, logistic, relu and identity (any
        noise type)."""
        kinds = (*_BACKWARD, nn.Identity, nn.Linear)
        return all(type(m) in kinds for m in network.trunk)

    def _buffers(self, n: int, like: torch.Tensor) -> tuple[list, ...]:
        """Transposed activations and gradients for ``n`` rows of the dtype
        and device of ``like``, made once.

        ``acts[0]`` is ``x`` transposed; ``acts[i]`` (i >= 1) is the output
        of layer ``i - 1`` and ``deltas[i]`` the gradient with respect to it.
        The third list holds a row of ones, layer 0's transposed weight
        gradient and room for ``y`` and the weights transposed (``d + 1``
        rows, filled by :meth:`rows`); the fourth, a dict, the compiled
        block's plans of this workspace (:meth:`_compiled`).
        """
        if n not in self._workspace:
            if len(self._workspace) >= 4:  # a stream of sizes: keep a few
                self._workspace.clear()
            widths = [self.linears[0].in_features]
            widths += [m.out_features for m in self.linears]
            acts = [like.new_empty(w, n) for w in widths]
            deltas = [like.new_empty(0)] + [like.new_empty(w, n) for w in widths[1:]]
            first = like.new_empty(widths[0], widths[1])  # layer 0's weight grad^T
            rest = like.new_empty(self.network.n_outputs + 1, n)
            self._workspace[n] = (acts, deltas, [like.new_ones(n), first, rest], {})
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
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        weights: torch.Tensor,
        grads: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
        constant_weight: float = 1.0,
        helper: _fused.BlockHelper | None = None,
    ) -> torch.Tensor | None:
        """Weighted NLL of a batch (``weights`` sum to one); sets ``.grad``.

        ``grads`` optionally gives, for each linear layer (trunk then head),
        the ``(weight, bias)`` tensors to write the gradients to instead of
        the parameters' ``.grad``; ``constant_weight`` is passed to
        :func:`~skmdn._mixture.diagonal_nll_forward` (or
        :func:`~skmdn._mixture.full_nll_forward`; 0 for a block of a batch
        other than the first). Everything runs feature-major, one column
        per row of ``x``: of the layouts measured at batch 8192 (2 threads),
        this one gives the fastest products, ``mm`` then an in-place bias
        beats ``addmm``, and the mixture loss reads its parameters as
        contiguous row slices. Where the step is one compiled call, a
        ``helper`` gets it instead (:meth:`_step`), and None is returned.
        """
        n = x.shape[0]
        self._buffers(n, x)[0][0].copy_(x.t())
        y_t, w = y.t().contiguous(), weights.contiguous()
        return self._step(n, y_t, w, grads, constant_weight, helper=helper)

    @torch.no_grad()
    def rows(
        self,
        packed: torch.Tensor,
        index: torch.Tensor | None,
        rows: slice,
        n_features: int,
        n_total: int,
        grads: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
        constant_weight: float = 1.0,
        helper: _fused.BlockHelper | None = None,
    ) -> torch.Tensor | None:
        """:meth:`__call__` on the rows ``packed[index[rows]]`` (``packed[rows]``
        when ``index`` is None) of packed ``[x | y | w]`` rows, ``x`` the
        first ``n_features`` columns, with the weights ``w / n_total``.

        The rows go straight into the transposed workspace through the
        compiled :func:`~skmdn._fused.gather_rows` where it is built (the
        same bits as the copies it replaces), or inside the compiled block
        (:meth:`_compiled`); else through :func:`packed_rows` and
        :meth:`__call__`.
        """
        start, stop, _ = rows.indices(len(packed if index is None else index))
        n = stop - start
        acts, _, (_, _, rest), _ = self._buffers(n, packed)
        if n_features != len(acts[0]):
            raise ValueError(
                f"rows: the network takes {len(acts[0])} features, not {n_features}."
            )
        d = self.network.n_outputs
        if self._block_applies(packed):  # the rows are gathered in the block
            gather = (packed, index, rows, n_total, rest)
            return self._step(
                n, rest[:d], rest[d], grads, constant_weight, gather, helper
            )
        if not _fused.gather_rows(packed, index, rows, acts[0], rest):
            inputs = packed_rows(packed, index, rows, n_features, n_total)
            return self(*inputs, grads, constant_weight)
        # w / n_total as packed_rows divides
        w = rest[d].div_(n_total)
        return self._step(n, rest[:d], w, grads, constant_weight, helper=helper)

    def _step(
        self,
        n: int,
        y_t: torch.Tensor,
        weights: torch.Tensor,
        grads: Sequence[tuple[torch.Tensor, torch.Tensor]] | None,
        constant_weight: float,
        gather: tuple | None = None,
        helper: _fused.BlockHelper | None = None,
    ) -> torch.Tensor | None:
        """The step on ``n`` rows whose ``x`` is in the workspace
        (``acts[0]``); ``y_t`` is ``y`` transposed and contiguous. Every
        block passes through here (where tests hook in): as one compiled
        call where :meth:`_block_applies` (``gather``, which only
        :meth:`rows` passes once it has checked that: the rows that call
        gathers first, see :func:`~skmdn._fused.mlp_block`), else through
        torch's products. The compiled call goes to ``helper`` if one is given
        (None is returned: :meth:`~skmdn._fused.BlockHelper.wait` gives the
        loss)."""
        if gather is not None or self._block_applies(y_t):
            return self._compiled(
                n, y_t, weights, grads, constant_weight, gather, helper
            )
        if grads is None:
            grads = [(m.weight.grad, m.bias.grad) for m in self.linears]
        net = self.network
        acts, deltas, (ones, first, _), _ = self._buffers(n, y_t)
        last = len(self.linears) - 1
        for i, layer in enumerate(self.linears):
            out = acts[i + 1]
            torch.mm(layer.weight, acts[i], out=out).add_(layer.bias[:, None])
            if i < last and self.forward_act is not None:
                self.forward_act(out)
        if net.noise_type == "full":
            loss = _fused.full_nll(
                acts[-1],
                y_t,
                weights,
                deltas[-1],
                net.n_components,
                net.min_scale,
                constant_weight,
            )
            if loss is None:  # no compiled kernel here: torch's
                logits, means, raw = self._split(acts[-1])
                loss, saved = full_nll_forward(
                    logits, means, raw, y_t, weights, net.min_scale, constant_weight
                )
                full_nll_backward(saved, 1.0, out=self._split(deltas[-1]))
        else:
            fixed = net.fixed_scale if net.noise_type == "fixed" else None
            loss = _fused.diagonal_nll(
                acts[-1],
                y_t,
                weights,
                deltas[-1],
                net.n_components,
                net.noise_type,
                net.min_scale,
                fixed,
                constant_weight,
            )
            if loss is None:  # no compiled kernel here: torch's
                logits, means, raw = self._split(acts[-1])
                loss, saved = diagonal_nll_forward(
                    logits,
                    means,
                    raw,
                    y_t,
                    weights,
                    net.min_scale,
                    fixed,
                    constant_weight,
                )
                diagonal_nll_backward(saved, 1.0, out=self._split(deltas[-1]))
        for i in range(last, -1, -1):
            layer, delta = self.linears[i], deltas[i + 1]
            weight_grad, bias_grad = grads[i]
            if i < last and self.backward_act is not None:
                self.backward_act(delta, acts[i + 1])
            if i > 0:
                torch.mm(delta, acts[i].t(), out=weight_grad)
                torch.mm(layer.weight.t(), delta, out=deltas[i])
            else:  # a thin input: (x^T g) is the faster product here
                weight_grad.copy_(torch.mm(acts[0], delta.t(), out=first).t())
            torch.mv(delta, ones, out=bias_grad)
        return loss

    def _block_applies(self, like: torch.Tensor) -> bool:
        """True where the whole step can run as :meth:`_compiled`."""
        act = self.compiled_act
        return act is not None and _fused.block_applies(like, act)

    def _compiled(
        self,
        n: int,
        y_t: torch.Tensor,
        weights: torch.Tensor,
        grads: Sequence[tuple[torch.Tensor, torch.Tensor]] | None,
        constant_weight: float,
        gather: tuple | None,
        helper: _fused.BlockHelper | None = None,
    ) -> torch.Tensor | None:
        """:meth:`_step` as one compiled call, :func:`~skmdn._fused.mlp_block`.

        The call holds no GIL from the first product to the last, so two
        blocks on two threads do not wait for each other as between torch's
        kernels, and each activation is one pass with its bias (numbers in
        ``benchmarks/README.md``). The tensors' addresses are checked once
        per workspace and set of parameter and gradient tensors (the plan).
        """
        if grads is None:
            grads = [(m.weight.grad, m.bias.grad) for m in self.linears]
        targets = [t for pair in grads for t in pair]
        acts, deltas, (_, first, _), plans = self._buffers(n, y_t)
        key = tuple(t.data_ptr() for t in (*self._params, *targets))
        plan = plans.get(key)
        if plan is None:
            if len(plans) >= 4:
                plans.clear()
            plan = plans[key] = _fused.mlp_plan(
                self._params, targets, acts, deltas, first
            )
        net = self.network
        return _fused.mlp_block(
            plan,
            acts[0],
            self.compiled_act,
            y_t,
            weights,
            net.n_components,
            net.noise_type,
            net.min_scale,
            net.fixed_scale if net.noise_type == "fixed" else None,
            constant_weight,
            gather,
            helper,
        )


class BlockStep(Protocol):
    """What :class:`BlockedBackprop` runs on each block:
    :class:`ManualBackprop` or :class:`~skmdn._training.AutogradStep`."""

    linears: list[nn.Linear]  # the trunk's linear layers, then the head

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        weights: torch.Tensor,
        grads: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
        constant_weight: float = 1.0,
    ) -> torch.Tensor: ...


def _same_view(
    view: torch.Tensor, base: torch.Tensor, other: torch.Tensor
) -> torch.Tensor:
    """The view of ``other`` that ``view`` is of ``base`` (same geometry)."""
    offset = view.storage_offset() - base.storage_offset()
    return other.as_strided(view.shape, view.stride(), other.storage_offset() + offset)


class BlockedBackprop:
    """A training step over a batch split into blocks, run on worker threads.

    A batch of ``n`` rows is cut into ``k`` near-equal blocks of consecutive
    rows: one block below ``block_rows / 4`` rows (1024 by default,
    :data:`~skmdn._utils.SPLIT_BATCH`), else an even number of blocks (at
    least two) of at most ``block_rows`` rows each. ``k`` depends on ``n``
    only. Each block has its own workspace and gradient buffer (the first
    block's is ``grad``, the buffer that holds every parameter's ``.grad``)
    and runs with one torch thread; the blocks' losses and gradients are
    summed in block order. So a step gives the same bits whether its blocks
    run on one thread or on several, and a fit's result does not depend on
    the number of threads (with two torch threads sharing each kernel of the
    whole batch, it did: the products' rounding depends on the thread
    count). On two cores this is as fast as two torch threads per kernel, or
    faster (numbers in ``benchmarks/README.md``). Call :meth:`close` when
    done: it stops the worker threads.

    Parameters
    ----------
    network : MDNNetwork
        A network that :meth:`ManualBackprop.supports` accepts, whose
        parameters' ``.grad`` are views of ``grad``.
    grad : Tensor
        The flat gradient buffer (:class:`~skmdn._training.FlatAdam`'s).
    block_rows : int, default=SMALL_BATCH
        The largest block.
    step : callable, default=ManualBackprop
        Makes a block's :class:`BlockStep` from ``network``; for the networks
        :class:`ManualBackprop` does not support,
        :class:`~skmdn._training.AutogradStep`.
    """

    def __init__(
        self,
        network: MDNNetwork,
        grad: torch.Tensor,
        block_rows: int = SMALL_BATCH,
        step: Callable[[MDNNetwork], BlockStep] = ManualBackprop,
    ) -> None:
        self.network, self.grad, self.block_rows = network, grad, block_rows
        self.step = step
        self._slots: list[tuple[BlockStep, torch.Tensor, list]] = []
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0
        self._helper: _fused.BlockHelper | None = None

    def blocks(self, n: int) -> list[slice]:
        """The blocks of a batch of ``n`` rows."""
        k = 1 if n < self.block_rows // 4 else max(2, -(-n // self.block_rows))
        k += k % 2 if k > 1 else 0  # an even count shares out evenly on 2 cores
        bounds = [n * j // k for j in range(k + 1)]
        return [slice(a, b) for a, b in itertools.pairwise(bounds)]

    def _slot(self, j: int) -> tuple[BlockStep, torch.Tensor, list]:
        while len(self._slots) <= j:
            manual = self.step(self.network)
            buffer = self.grad if not self._slots else torch.empty_like(self.grad)
            targets = [
                tuple(_same_view(p.grad, self.grad, buffer) for p in (m.weight, m.bias))
                for m in manual.linears
            ]
            self._slots.append((manual, buffer, targets))
        return self._slots[j]

    def _workers(self, count: int) -> ThreadPoolExecutor:
        if self._pool_size != count:
            self.close()
            self._pool = ThreadPoolExecutor(count, initializer=one_torch_thread)
            self._pool_size = count
        return self._pool

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        weights: torch.Tensor,
        workers: int = 1,
    ) -> torch.Tensor:
        """Weighted NLL of a batch (``weights`` sum to one); sets ``.grad``.

        Blocks run on up to ``workers`` threads (the calling thread is one
        of them), each with one torch thread.
        """

        def block(step: BlockStep, rows: slice, grads: list, c: float, helper=None):
            if isinstance(step, ManualBackprop):
                return step(x[rows], y[rows], weights[rows], grads, c, helper)
            return step(x[rows], y[rows], weights[rows], grads, c)

        return self._run(x.shape[0], block, workers)

    def unit_rows(
        self,
        packed: torch.Tensor,
        index: torch.Tensor | None,
        n_features: int,
        workers: int = 1,
    ) -> torch.Tensor:
        """:meth:`__call__` on the rows ``packed[index]`` (all rows if
        ``index`` is None) of packed ``[x | y | 1]`` rows, weighted equally.

        Each block gathers its own rows on its worker thread. Gathering the
        whole batch first, on the calling thread, took about 5 % of a step at
        batch 8192 (230 us: its rows are mostly not in cache), while the
        other core waited. A :class:`ManualBackprop` block gathers them
        straight into its workspace (:meth:`ManualBackprop.rows`). The
        weights ``1 / n`` are the same bits as ``w / w.sum()`` for a column
        of ones, so the step is the same as through :meth:`__call__`.
        """
        n = packed.shape[0] if index is None else index.shape[0]

        def block(step: BlockStep, rows: slice, grads: list, c: float, helper=None):
            if isinstance(step, ManualBackprop):
                return step.rows(packed, index, rows, n_features, n, grads, c, helper)
            inputs = packed_rows(packed, index, rows, n_features, n)
            return step(*inputs, grads, c)

        return self._run(n, block, workers)

    @torch.no_grad()
    def _run(
        self,
        n: int,
        block: Callable[..., torch.Tensor | None],
        workers: int,
    ) -> torch.Tensor:
        """The blocked step of a batch of ``n`` rows, whose block ``rows``
        is ``block(step, rows, grads, constant_weight)``: the block's loss,
        its gradients written to ``grads`` (with a fifth argument, a
        :class:`~skmdn._fused.BlockHelper`, a compiled block is posted to
        it and None returned)."""
        blocks = self.blocks(n)
        slots = [self._slot(j) for j in range(len(blocks))]

        def run(j: int, *helper: _fused.BlockHelper) -> torch.Tensor | None:
            manual, _, targets = slots[j]
            return block(manual, blocks[j], targets, float(j == 0), *helper)

        helpers = min(workers, len(blocks)) - 1
        with torch_threads(1):
            if helpers <= 0:  # one thread: the blocks in order, no hand-over
                losses = [run(j) for j in range(len(blocks))]
            elif helpers == 1 and self._pairs(slots[1][0]):
                losses = self._paired(run, len(blocks))
            else:
                losses = self._on_workers(run, len(blocks), helpers)
            loss = losses[0]
            for j in range(1, len(blocks)):
                loss = loss + losses[j]
                self.grad.add_(slots[j][1])
        return loss

    def _pairs(self, step: BlockStep) -> bool:
        """True when the blocks on two threads run as :meth:`_paired`: a
        block is a compiled :class:`ManualBackprop` block and the helper is
        built (:meth:`blocks` gives an even count from two)."""
        return (
            isinstance(step, ManualBackprop)
            and _fused.helper_available()
            and step._block_applies(self.grad)
        )

    def _paired(
        self, run: Callable[..., torch.Tensor | None], count: int
    ) -> list[torch.Tensor]:
        """``[run(0), ..., run(count - 1)]`` in pairs: each odd block posted
        to the helper's loop (started on the pool's worker) while the
        calling thread runs the even one before it. A block starts within a
        microsecond of its post, where a sleeping pool worker took 80 us to
        wake and the step as long again to learn that it had finished
        (numbers in ``benchmarks/README.md``). A posted block is waited for
        whatever the calling thread's does."""
        self._workers(1)  # the thread the helper's loop runs on
        if self._helper is None:
            self._helper = _fused.BlockHelper(lambda loop: self._pool.submit(loop))
        losses = []
        for j in range(0, count, 2):
            second = run(j + 1, self._helper)
            if second is None:  # posted
                try:
                    first = run(j)
                finally:  # never leave its block running past this step
                    second = self._helper.wait()
            else:  # it ran here: not a compiled block after all
                first = run(j)
            losses += [first, second]
        return losses

    def _on_workers(
        self, run: Callable[[int], torch.Tensor], count: int, helpers: int
    ) -> list[torch.Tensor]:
        """``[run(0), ..., run(count - 1)]``, the blocks taken in turn by the
        calling thread and ``helpers`` worker threads."""
        losses: list[torch.Tensor | None] = [None] * count
        pending = iter(range(count))
        lock, failed = threading.Lock(), threading.Event()

        def drain() -> None:  # take the next block until none is left
            while not failed.is_set():
                with lock:
                    j = next(pending, None)
                if j is None:
                    return
                try:
                    losses[j] = run(j)
                except BaseException:
                    failed.set()
                    raise

        if self._helper is not None:  # free the pool's thread from its loop
            self._helper.stop()
        pool = self._workers(helpers)
        futures = [pool.submit(drain) for _ in range(helpers)]
        try:
            drain()
        except BaseException:  # an error or an interrupt: stop the helpers
            failed.set()
            raise
        finally:  # never leave a block running into the next step
            done = [f.exception() for f in futures]
        for error in done:
            if error is not None:
                raise error
        return losses

    def close(self) -> None:
        """Stop the worker threads (they are started again when needed)."""
        if self._helper is not None:
            self._helper.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._pool, self._pool_size = None, 0
