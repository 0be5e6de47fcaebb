"""The training loop: mini-batch Adam on the weighted negative log-likelihood.

No ``DataLoader``: the data live as tensors on the training device, and each
epoch draws one permutation from a private :class:`torch.Generator`.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from sklearn.exceptions import ConvergenceWarning

from . import _fused
from ._backprop import BlockedBackprop, ManualBackprop
from ._mixture import diagonal_mixture_nll, mixture_log_prob
from ._network import MDNNetwork
from ._progress import ProgressReporter
from ._utils import (
    SMALL_BATCH,
    ThreadChooser,
    cpu_fast_path,
    run_blocks,
    thread_count,
    torch_threads,
    warn_user,
)

__all__ = [
    "AutogradStep",
    "FlatAdam",
    "TrainData",
    "TrainHistory",
    "batch_loss",
    "distinct_rows",
    "mean_log_likelihood",
    "step_loss",
    "train",
    "training_torch_threads",
]


@dataclass
class TrainData:
    """Standardised training (and optional validation) rows.

    ``train`` and ``val`` hold one row ``[x | y | w]`` per sample, so that a
    batch is one gather instead of three; :meth:`columns` splits rows back
    into ``x``, ``y`` and the sample weights ``w``. ``log_scale`` is
    ``sum(log y_scale)``, added to standardised NLLs to report them in the
    original target units (with ``target_transform``, plus the training rows'
    mean ``log |dy / dz|``; ``val_log_scale`` is the same for the validation
    rows, ``log_scale`` if None). ``x_noise`` and ``y_noise`` are standard
    deviations (standardised units) of Gaussian noise added to each training
    batch.
    ``noise_rows``, if set, maps each training row to its distinct row (see
    :func:`distinct_rows`): full-batch steps then draw one noise per distinct
    row, so that repeated rows get the noise that one row of the same total
    weight gets.
    """

    train: torch.Tensor
    n_features: int
    log_scale: float
    val: torch.Tensor | None = None
    val_log_scale: float | None = None
    x_noise: float = 0.0
    y_noise: float = 0.0
    noise_rows: tuple[torch.Tensor, int] | None = None

    def columns(
        self, rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Views ``(x, y, w)`` of packed ``rows``."""
        f = self.n_features
        return rows[:, :f], rows[:, f:-1], rows[:, -1]


@dataclass
class TrainHistory:
    """What the loop records; the estimator copies it to its fitted state."""

    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] = field(default_factory=list)
    best_loss: float = math.inf
    best_validation_score: float = -math.inf
    n_iter: int = 0
    t: int = 0
    no_improvement_count: int = 0

    def record(
        self,
        loss: float,
        score: float,
        steps: int,
        *,
        tol: float,
        early_stopping: bool,
        lr_decay_patience: int | None = None,
    ) -> tuple[bool, bool]:
        """Record a finished epoch and update the patience counter.

        The epoch counts as no improvement unless its validation score (with
        ``early_stopping``) exceeds the best so far by at least ``tol``, or
        its training loss (without) falls below the best by more than ``tol``,
        as in :class:`~sklearn.neural_network.MLPRegressor`; a non-finite
        score is no improvement.

        Parameters
        ----------
        loss : float
            The epoch's training loss.
        score : float
            Its validation log-likelihood (NaN without early stopping).
        steps : int
            The number of optimiser steps it made.
        tol : float
            The least change that counts as an improvement.
        early_stopping : bool
            Whether ``score`` (else ``loss``) is monitored.
        lr_decay_patience : int or None, default=None
            Every this many epochs without improvement halve the learning
            rate (None: never).

        Returns
        -------
        improved : bool
            Whether the validation score is the best so far (only with
            ``early_stopping``: the weights to keep).
        halve : bool
            Whether to halve the learning rate now.

        Examples
        --------
        >>> history = TrainHistory()
        >>> history.record(1.0, math.nan, 3, tol=0.1, early_stopping=False)
        (False, False)
        >>> history.record(0.95, math.nan, 3, tol=0.1, early_stopping=False,
        ...                lr_decay_patience=1)
        (False, True)
        >>> history.n_iter, history.t, history.no_improvement_count
        (2, 6, 1)
        """
        self.n_iter += 1
        self.t += steps
        self.loss_curve.append(loss)
        self.validation_scores.append(score)  # NaN without early stopping
        improved = False
        if early_stopping:
            # a non-finite score (of a later epoch) is no improvement
            if not score >= self.best_validation_score + tol:
                self.no_improvement_count += 1
            else:
                self.no_improvement_count = 0
            if score > self.best_validation_score:
                self.best_validation_score = score
                improved = True
        elif loss > self.best_loss - tol:
            self.no_improvement_count += 1
        else:
            self.no_improvement_count = 0
        self.best_loss = min(self.best_loss, loss)
        halve = bool(
            lr_decay_patience
            and self.no_improvement_count
            and self.no_improvement_count % lr_decay_patience == 0
        )
        return improved, halve


class FlatAdam:
    """Adam over one flat buffer that holds every parameter of a network.

    Binding rewires each parameter (and its ``.grad``) to a view of one
    contiguous buffer, so a step is one pass over that buffer whatever the
    number of layers (the compiled :func:`~skmdn._fused.adam_step` where it
    is built, else eight torch operations), and zeroing the gradients is one
    operation. On a small network this more than halves the optimiser's
    share of a step against ``torch.optim.Adam(fused=True)`` (numbers in
    ``benchmarks/README.md``). The update is Adam's (Kingma & Ba), with L2
    weight decay ``weight_decay * W`` added to the gradient of the weight
    matrices only (not the biases), as ``torch.optim.Adam(weight_decay=...)``
    on those parameters. ``weight_decay`` is ``alpha / n``, ``n`` the sum of
    the sample weights (the number of samples without weights), so the
    penalty is ``alpha / (2 n) * ||W||^2`` as in scikit-learn's full-batch
    MLP (``solver='lbfgs'``).

    Call :meth:`release` when training ends: it gives every parameter its own
    storage back and drops the gradients.
    """

    def __init__(
        self,
        network: MDNNetwork,
        lr: float,
        weight_decay: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.lr, self.betas, self.eps, self.t = float(lr), betas, eps, 0
        self._params = list(network.parameters())
        with torch.no_grad():
            self.flat = torch.cat([p.detach().reshape(-1) for p in self._params])
        self.grad = torch.zeros_like(self.flat)
        decay, offset = [], 0
        for name, p in network.named_parameters():
            n = p.numel()
            p.data = self.flat[offset : offset + n].view_as(p)
            p.grad = self.grad[offset : offset + n].view_as(p)
            decay.append(self.flat.new_full((n,), 0.0 if "bias" in name else 1.0))
            offset += n
        self.decay = torch.cat(decay).mul_(weight_decay)
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)

    def zero_grad(self) -> None:
        """Zero every gradient (autograd accumulates into the flat buffer)."""
        self.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every parameter."""
        self.t += 1
        beta1, beta2 = self.betas
        bias2 = math.sqrt(1.0 - beta2**self.t)
        step_size = self.lr / (1.0 - beta1**self.t)
        if _fused.adam_step(
            self.flat,
            self.grad,
            self.decay,
            self.exp_avg,
            self.exp_avg_sq,
            self.betas,
            bias2,
            step_size,
            self.eps,
        ):  # one compiled pass (the same to rounding), else eight torch ops
            return
        g = torch.addcmul(self.grad, self.decay, self.flat)
        self.exp_avg.lerp_(g, 1.0 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        denom = self.exp_avg_sq.sqrt().div_(bias2)
        self.flat.addcdiv_(self.exp_avg, denom.add_(self.eps), value=-step_size)

    def snapshot(self) -> torch.Tensor:
        """A copy of every parameter (one tensor)."""
        return self.flat.detach().clone()

    def checkpoint(self) -> dict:
        """A copy of the whole training state: parameters, moments, step
        count and learning rate (:meth:`rollback` puts it back)."""
        return {"flat": self.snapshot(), **self.state_dict()}

    def rollback(self, checkpoint: dict) -> None:
        """Return to :meth:`checkpoint`: after a non-finite step the moments
        are non-finite too, and keeping them would poison every later step."""
        self.restore(checkpoint["flat"])
        self.load_state_dict(checkpoint)

    @torch.no_grad()
    def restore(self, snapshot: torch.Tensor) -> None:
        """Put the parameters of ``snapshot`` back."""
        self.flat.copy_(snapshot)

    def release(self) -> None:
        """Give each parameter its own storage again and drop the gradients."""
        for p in self._params:
            p.data = p.data.clone()
            p.grad = None

    def state_dict(self) -> dict:
        """Step count, learning rate and moment estimates."""
        return {
            "t": self.t,
            "lr": self.lr,
            "exp_avg": self.exp_avg.clone(),
            "exp_avg_sq": self.exp_avg_sq.clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict` (copies the moments)."""
        self.t, self.lr = int(state["t"]), float(state["lr"])
        device = self.exp_avg.device
        self.exp_avg.copy_(torch.as_tensor(state["exp_avg"], device=device))
        self.exp_avg_sq.copy_(torch.as_tensor(state["exp_avg_sq"], device=device))


def batch_loss(
    network: MDNNetwork,
    x: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    constant_weight: float = 1.0,
) -> torch.Tensor:
    """Weighted mean NLL of a batch (``weights`` sum to one), standardised units.

    Diagonal-family noise types use the fused
    :func:`~skmdn._mixture.diagonal_mixture_nll` (``constant_weight``: see
    there); ``'full'`` goes through autograd on
    :func:`~skmdn._mixture.mixture_log_prob`, whose constant is weighted row
    by row.
    """
    if network.noise_type == "full":
        return -(weights * mixture_log_prob(network(x), y)).sum()
    logits, means, raw = network.head_outputs(x)
    if network.noise_type == "fixed":
        return diagonal_mixture_nll(
            logits, means, None, y, weights, 0.0, network.fixed_scale, constant_weight
        )
    return diagonal_mixture_nll(
        logits, means, raw, y, weights, network.min_scale, None, constant_weight
    )


class AutogradStep:
    """:func:`batch_loss` and its gradients by autograd, called as
    :class:`~skmdn._backprop.ManualBackprop` is (for the networks that it
    does not support: activations ``'gelu'`` and ``'silu'``), so that
    :class:`~skmdn._backprop.BlockedBackprop` can run either on blocks of a
    batch.
    """

    def __init__(self, network: MDNNetwork) -> None:
        self.network = network
        self.linears = [m for m in network.trunk if isinstance(m, torch.nn.Linear)]
        self.linears.append(network.head)

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        weights: torch.Tensor,
        grads: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
        constant_weight: float = 1.0,
    ) -> torch.Tensor:
        """The loss; every layer's gradients written to ``grads`` (default:
        the parameters' ``.grad``)."""
        if grads is None:
            grads = [(m.weight.grad, m.bias.grad) for m in self.linears]
        params = [p for m in self.linears for p in (m.weight, m.bias)]
        with torch.enable_grad():  # grad mode is per thread
            loss = batch_loss(self.network, x, y, weights, constant_weight)
            got = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for target, grad in zip(
                (t for pair in grads for t in pair), got, strict=True
            ):
                target.copy_(grad)
        return loss.detach()


def step_loss(step: Callable[[int], torch.Tensor], workers: int) -> torch.Tensor:
    """``step(workers)``: a batch's loss, with every parameter's ``.grad`` set
    to its gradient, on up to ``workers`` threads. Every training step (and
    nothing else) passes through here, where tests hook in."""
    return step(workers)


def _epoch(
    optimizer: FlatAdam,
    data: TrainData,
    batch_size: int,
    generator: torch.Generator,
    threads: ThreadChooser,
    blocked: BlockedBackprop,
    in_blocks: bool,
) -> tuple[torch.Tensor, int]:
    """One pass over the data; returns the weighted mean loss (a tensor) and steps.

    Each step runs as one ``threads`` block (see :class:`ThreadChooser`), the
    chosen count being the number of worker threads, each with one torch
    thread. ``blocked`` sets the gradients; with ``in_blocks`` (every
    training row's weight is 1 and there is no noise) its blocks gather
    their own rows.
    """
    rows = data.train
    n = rows.shape[0]
    total = rows.new_zeros(())
    if batch_size >= n:
        batches = [None]
    else:
        perm = torch.randperm(n, generator=generator, device=generator.device)
        batches = perm.to(rows.device).split(batch_size)
    for idx in batches:
        rows_in_batch = n if idx is None else idx.numel()
        with threads.block(rows_in_batch) as count:
            if in_blocks:
                step = functools.partial(blocked.unit_rows, rows, idx, data.n_features)
                w_sum = float(rows_in_batch)
            else:
                xb, yb, wb = data.columns(
                    rows if idx is None else rows.index_select(0, idx)
                )
                # noise regularisation: fresh noise every step
                groups = data.noise_rows if idx is None else None
                if data.x_noise > 0.0:
                    xb = xb + data.x_noise * _randn_like(xb, generator, groups)
                if data.y_noise > 0.0:
                    yb = yb + data.y_noise * _randn_like(yb, generator, groups)
                w_sum = wb.sum()
                step = functools.partial(blocked, xb, yb, wb / w_sum)
            loss = step_loss(step, count)
            optimizer.step()
            total += loss.detach() * w_sum
    return total / data.columns(rows)[2].sum(), len(batches)


def mean_log_likelihood(
    network: MDNNetwork,
    X: torch.Tensor,
    Y: torch.Tensor,
    w: torch.Tensor,
    chunk: int = 4096,
    workers: int = 1,
) -> float:
    """Weighted mean log-likelihood (standardised units) of ``Y`` given ``X``.

    Chunks of ``chunk`` rows run on up to ``workers`` threads with one torch
    thread each (:func:`~skmdn._utils.run_blocks`); their sums are added in
    chunk order, so the result does not depend on ``workers``.
    """
    blocks = [slice(s, s + chunk) for s in range(0, X.shape[0], chunk)]
    sums: list[torch.Tensor | None] = [None] * len(blocks)

    def run(sl: slice) -> None:
        with torch.inference_mode():  # grad mode is per thread
            ll = mixture_log_prob(network(X[sl]), Y[sl])
            sums[sl.start // chunk] = (w[sl] * ll).sum()

    run_blocks(run, blocks, workers)
    total = X.new_zeros(())
    for part in sums:
        total += part
    return float(total / w.sum())


def training_torch_threads(
    device: torch.device, n_threads: int | None, rows: int
) -> int:
    """Torch's thread count while training on batches of ``rows`` rows.

    One on a CPU, where the steps run in blocks on worker threads
    (:class:`~skmdn._backprop.BlockedBackprop`): after a kernel that runs on
    two threads, OpenMP's second thread spins for about 10 ms on the core a
    worker needs (measured: 9-12 ms of CPU time during a 50 ms sleep), so the
    next steps' blocks would share one core. Elsewhere
    :func:`~skmdn._utils.thread_count`.
    """
    if cpu_fast_path(device):
        return 1
    return thread_count(n_threads, rows)


def _randn_like(
    t: torch.Tensor,
    generator: torch.Generator,
    groups: tuple[torch.Tensor, int] | None = None,
) -> torch.Tensor:
    """Standard normal noise shaped like ``t``, drawn in float32 whatever
    torch's default dtype (a global setting must not change a fit) and cast
    to ``t``'s dtype and device. With ``groups`` (``(inverse, n_distinct)``
    from :func:`distinct_rows`), one draw per distinct row, in the distinct
    rows' sorted order, shared by the rows that repeat it."""
    shape = t.shape if groups is None else (groups[1], *t.shape[1:])
    noise = torch.randn(
        shape, generator=generator, device=generator.device, dtype=torch.float32
    )
    if groups is not None:
        noise = noise.to(groups[0].device).index_select(0, groups[0])
    return noise.to(t)


def distinct_rows(data: TrainData) -> tuple[tuple[torch.Tensor, int], float]:
    """The distinct ``[x | y]`` rows of ``data.train`` and their effective number.

    Returns ``((inverse, n_distinct), n_eff)``: ``inverse[i]`` is the index of
    row ``i``'s distinct row in lexicographic order (an order that does not
    depend on the order or the repetition of the rows), and ``n_eff`` is
    Kish's effective sample size ``sum(v) ** 2 / sum(v ** 2)`` of the distinct
    rows' summed weights ``v``. Rows repeated ``k`` times and one row of
    weight ``k`` give the same result (to the rounding of standardisation).

    Computed on the CPU, once per fit, and ``inverse`` moved to the data's
    device: MPS has no float64 (and long had no ``unique`` along a
    dimension), and the grouping is then the same on every device.
    """
    x, y, w = data.columns(data.train.cpu())
    _, inverse = torch.unique(
        torch.cat([x, y], dim=1), dim=0, sorted=True, return_inverse=True
    )
    n_distinct = int(inverse.max()) + 1
    v = torch.zeros(n_distinct, dtype=torch.float64)
    v.index_add_(0, inverse, w.to(torch.float64))
    n_eff = float(v.sum() ** 2 / (v * v).sum())
    return (inverse.to(data.train.device), n_distinct), n_eff


def _stop_message(
    history: TrainHistory, tol: float, early_stopping: bool, best_epoch: int
) -> str:
    """Why :func:`train` stopped on its patience, for the progress report.

    >>> history = TrainHistory(n_iter=9, no_improvement_count=4)
    >>> history.best_validation_score = -0.25
    >>> print(_stop_message(history, 1e-4, False, 5))
    Training loss did not improve by tol=0.0001 for 4 epochs: stopped after epoch 9.
    >>> print(_stop_message(history, 0.0, True, 5))  # doctest: +NORMALIZE_WHITESPACE
    Validation NLL did not improve by tol=0 for 4 epochs: stopped after epoch 9
    and kept the weights of epoch 5 (validation NLL = 0.250000).
    """
    monitored = "Validation NLL" if early_stopping else "Training loss"
    message = (
        f"{monitored} did not improve by tol={tol:g} for "
        f"{history.no_improvement_count} epochs: stopped after epoch {history.n_iter}"
    )
    if not early_stopping:
        return message + "."
    return (
        f"{message} and kept the weights of epoch {best_epoch} (validation NLL = "
        f"{-history.best_validation_score:.6f})."
    )


class _Checkpoints:
    """The states :func:`train` can go back to.

    ``last_good`` is the whole optimiser state after the last finished
    (finite) epoch; with early stopping, ``best_state`` holds the weights of
    the epoch with the best validation score so far and ``best_epoch`` its
    number (else ``best_state`` is None); ``n_start`` is the number of epochs
    trained before this call.
    """

    def __init__(self, optimizer: FlatAdam, n_start: int, early_stopping: bool):
        self.optimizer, self.n_start = optimizer, n_start
        self.last_good = optimizer.checkpoint()
        self.best_state = self.last_good["flat"] if early_stopping else None
        self.best_epoch = n_start  # the epoch whose weights best_state holds

    def save(self, n_iter: int, improved: bool) -> None:
        """Checkpoint the state after epoch ``n_iter``, the best if ``improved``."""
        self.last_good = self.optimizer.checkpoint()
        if improved:
            self.best_state, self.best_epoch = self.last_good["flat"], n_iter

    def restore_best(self) -> None:
        """Put the best weights back (with early stopping; else nothing)."""
        if self.best_state is not None:
            self.optimizer.restore(self.best_state)

    def keep_on_interrupt(self, n_iter: int) -> bool:
        """After an interrupt: back to the last finished epoch (with early
        stopping, the best) with a warning, or False when no epoch of this
        call has finished (the interrupt then propagates)."""
        self.optimizer.rollback(self.last_good)
        if n_iter == self.n_start:
            return False
        self.restore_best()
        kept = (
            "the best weights found so far"
            if self.best_state is not None
            else "the weights of its last finished epoch"
        )
        warn_user(
            f"Training interrupted by the user after {n_iter} epochs; "
            f"the model keeps {kept}.",
            UserWarning,
        )
        return True

    def give_up_non_finite(self, n_iter: int) -> None:
        """After an epoch whose loss is non-finite (``n_iter`` epochs done):
        a :class:`FloatingPointError` in the first epoch of a model, else back
        to the last finite epoch (with early stopping, the best weights) and
        a :class:`~sklearn.exceptions.ConvergenceWarning`."""
        if n_iter == 0:
            raise FloatingPointError(
                "The training loss became non-finite in the first epoch. Lower "
                "learning_rate_init, raise min_scale, or check the data for "
                "extreme values (standardize=True helps)."
            )
        self.optimizer.rollback(self.last_good)
        kept = f"the weights of epoch {n_iter} were restored"
        if self.best_state is not None:
            self.optimizer.restore(self.best_state)
            kept = "the weights of the best validation score were restored"
        if n_iter == self.n_start:  # a continued model: as it was
            kept = "the model was left as it was before this call"
        warn_user(
            f"The training loss became non-finite in epoch {n_iter + 1}; {kept} "
            "and training stopped. Lower learning_rate_init or raise min_scale.",
            ConvergenceWarning,
        )


def _first_score_error(score: float) -> FloatingPointError:
    """The error for a non-finite validation score after a fit's first epoch:
    no epoch to restore could be told apart (the best stayed the starting
    weights: a fit silently returned the untrained model)."""
    return FloatingPointError(
        f"The validation log-likelihood is {score} after the first epoch of this "
        "fit, while the training loss is finite: some held-out rows (see "
        "validation_fraction) have zero density under the model, so early "
        "stopping cannot compare epochs. Check X and y for extreme values or "
        "wrong units (standardize=True helps), or set early_stopping=False."
    )


def train(
    network: MDNNetwork,
    optimizer: FlatAdam,
    data: TrainData,
    history: TrainHistory,
    *,
    batch_size: int,
    max_iter: int,
    tol: float,
    n_iter_no_change: int,
    early_stopping: bool,
    generator: torch.Generator,
    verbose: int = 0,
    stopping: bool = True,
    lr_decay_patience: int | None = None,
    threads: ThreadChooser,
) -> bool:
    """Run up to ``max_iter`` epochs, updating ``network`` and ``history``.

    Stopping follows :class:`~sklearn.neural_network.MLPRegressor`: training
    stops once the training loss (or, with ``early_stopping``, the validation
    log-likelihood) has not improved by ``tol`` for more than
    ``n_iter_no_change`` epochs (see :meth:`TrainHistory.record`); with
    ``early_stopping`` the best weights are restored at the end. If the loss
    turns non-finite, the weights of the last finite epoch (with
    ``early_stopping``: the best) are restored, with the optimiser's state of
    that epoch, and a warning is issued; if that happens in the first epoch a
    :class:`FloatingPointError` says what to change, as it does when the
    first epoch's validation log-likelihood is non-finite (a later epoch's
    counts as no improvement). A ``KeyboardInterrupt`` stops training, keeps
    the weights of the last finished epoch (with ``early_stopping``, the best
    so far) and warns; if no epoch of this call has finished, the optimiser
    is rolled back and the interrupt propagates (the caller keeps what it
    had). With ``lr_decay_patience`` (learning rate on plateau), every
    ``lr_decay_patience`` epochs without improvement halve the learning rate.
    ``verbose`` selects the progress report (see
    :class:`~skmdn._progress.ProgressReporter`). ``threads`` chooses, step by
    step, the number of worker threads a step's blocks run on, each with one
    torch thread (see :func:`_epoch`). Returns True when the stopping
    criterion was met.

    The parameters of ``network`` are bound to ``optimizer``'s flat buffer
    while training runs and get their own storage back when it ends.
    """
    on_cpu = cpu_fast_path(optimizer.grad.device)  # else one block, no workers
    blocked = BlockedBackprop(
        network,
        optimizer.grad,
        SMALL_BATCH if on_cpu else 2**62,
        ManualBackprop if ManualBackprop.supports(network) else AutogradStep,
    )
    in_blocks = (  # see _epoch; the weight check is one pass, made once
        data.x_noise == 0.0
        and data.y_noise == 0.0
        and bool(data.columns(data.train)[2].eq(1.0).all())
    )
    reporter = ProgressReporter(verbose, max_iter)
    try:
        saved = _Checkpoints(optimizer, history.n_iter, early_stopping)
        for _ in range(max_iter):
            try:
                loss_t, steps = _epoch(
                    optimizer, data, batch_size, generator, threads, blocked, in_blocks
                )
                check = loss_t + optimizer.flat.sum() * 0.0
                loss = float(loss_t) + data.log_scale
                finite = math.isfinite(float(check))
                # Validate inside the try, before any record of this epoch is made,
                # so an interrupt here also keeps the history consistent.
                score = math.nan
                if early_stopping and finite:
                    with torch_threads(1 if on_cpu else threads.preferred()):
                        val_ll = mean_log_likelihood(
                            network,
                            *data.columns(data.val),
                            workers=threads.preferred() if on_cpu else 1,
                        )
                    score = val_ll - (
                        data.log_scale
                        if data.val_log_scale is None
                        else data.val_log_scale
                    )
            except KeyboardInterrupt:
                reporter.close()
                if not saved.keep_on_interrupt(history.n_iter):
                    raise
                return False
            if not finite:
                reporter.close()
                saved.give_up_non_finite(history.n_iter)
                return False
            first = history.n_iter == saved.n_start
            if early_stopping and first and not math.isfinite(score):
                reporter.close()
                raise _first_score_error(score)
            improved, halve = history.record(
                loss,
                score,
                steps,
                tol=tol,
                early_stopping=early_stopping,
                lr_decay_patience=lr_decay_patience,
            )
            if halve:
                optimizer.lr *= 0.5
            saved.save(history.n_iter, improved)  # after the rate's update
            try:  # printing is where an interrupt is most likely to land
                reporter.update(
                    history.n_iter, loss, -score if early_stopping else None
                )
            except KeyboardInterrupt:  # the epoch is recorded: keep it
                reporter.close()
                saved.keep_on_interrupt(history.n_iter)
                return False
            if stopping and history.no_improvement_count > n_iter_no_change:
                reporter.close()
                saved.restore_best()
                with contextlib.suppress(KeyboardInterrupt):  # training is done
                    reporter.note(
                        _stop_message(history, tol, early_stopping, saved.best_epoch)
                    )
                return True
        reporter.close()
        saved.restore_best()
        return False
    finally:
        reporter.close()  # also after an error
        blocked.close()
        optimizer.release()
