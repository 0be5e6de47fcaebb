"""The training loop: mini-batch Adam on the weighted negative log-likelihood.

No ``DataLoader``: the data live as tensors on the training device, and each
epoch draws one permutation from a private :class:`torch.Generator`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch
from sklearn.exceptions import ConvergenceWarning

from ._mixture import mixture_log_prob
from ._network import MDNNetwork
from ._progress import ProgressReporter
from ._utils import limit_torch_threads

__all__ = ["TrainData", "TrainHistory", "make_optimizer", "train"]


@dataclass
class TrainData:
    """Standardised training (and optional validation) tensors.

    ``w`` and ``w_val`` are sample weights; ``log_scale`` is
    ``sum(log y_scale)``, added to standardised NLLs to report them in the
    original target units. ``x_noise`` and ``y_noise`` are standard deviations
    (standardised units) of Gaussian noise added to each training batch.
    """

    X: torch.Tensor
    Y: torch.Tensor
    w: torch.Tensor
    log_scale: float
    X_val: torch.Tensor | None = None
    Y_val: torch.Tensor | None = None
    w_val: torch.Tensor | None = None
    x_noise: float = 0.0
    y_noise: float = 0.0


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


def make_optimizer(
    network: MDNNetwork, lr: float, weight_decay: float
) -> torch.optim.Adam:
    """Adam with L2 weight decay on the weight matrices only (not biases).

    ``weight_decay`` is ``alpha / n_samples``, so the penalty is
    ``alpha / (2 n) * ||W||^2`` as in scikit-learn's MLP. On CPU and CUDA the
    fused implementation is used: one kernel per parameter group instead of
    a dozen small ones, measured fastest in ``benchmarks/speed.py``.
    """
    decay = [p for name, p in network.named_parameters() if name.endswith("weight")]
    rest = [p for name, p in network.named_parameters() if not name.endswith("weight")]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]
    device = next(network.parameters()).device
    fused = True if device.type in ("cpu", "cuda") else None
    return torch.optim.Adam(groups, lr=lr, fused=fused)


def _epoch(
    network: MDNNetwork,
    optimizer: torch.optim.Optimizer,
    data: TrainData,
    batch_size: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, int]:
    """One pass over the data; returns the weighted mean loss (a tensor) and steps."""
    n = data.X.shape[0]
    total = data.X.new_zeros(())
    if batch_size >= n:
        batches = [None]
    else:
        perm = torch.randperm(n, generator=generator, device=generator.device)
        batches = perm.to(data.X.device).split(batch_size)
    for idx in batches:
        if idx is None:
            xb, yb, wb = data.X, data.Y, data.w
        else:
            xb, yb, wb = data.X[idx], data.Y[idx], data.w[idx]
        if data.x_noise > 0.0:  # noise regularisation: fresh noise every step
            xb = xb + data.x_noise * _randn_like(xb, generator)
        if data.y_noise > 0.0:
            yb = yb + data.y_noise * _randn_like(yb, generator)
        w_sum = wb.sum()
        loss = -(wb * mixture_log_prob(network(xb), yb)).sum() / w_sum
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * w_sum
    return total / data.w.sum(), len(batches)


@torch.no_grad()
def mean_log_likelihood(
    network: MDNNetwork,
    X: torch.Tensor,
    Y: torch.Tensor,
    w: torch.Tensor,
    chunk: int = 4096,
) -> float:
    """Weighted mean log-likelihood (standardised units) of ``Y`` given ``X``."""
    total = X.new_zeros(())
    for start in range(0, X.shape[0], chunk):
        sl = slice(start, start + chunk)
        total += (w[sl] * mixture_log_prob(network(X[sl]), Y[sl])).sum()
    return float(total / w.sum())


def _randn_like(t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(t.shape, generator=generator, device=generator.device).to(t)


def _snapshot(network: MDNNetwork) -> list[torch.Tensor]:
    return [p.detach().clone() for p in network.parameters()]


def _restore(network: MDNNetwork, snapshot: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for p, saved in zip(network.parameters(), snapshot, strict=True):
            p.copy_(saved)


@limit_torch_threads()
def train(
    network: MDNNetwork,
    optimizer: torch.optim.Optimizer,
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
) -> bool:
    """Run up to ``max_iter`` epochs, updating ``network`` and ``history``.

    Stopping follows :class:`~sklearn.neural_network.MLPRegressor`: training
    stops once the training loss (or, with ``early_stopping``, the validation
    log-likelihood) has not improved by ``tol`` for more than
    ``n_iter_no_change`` epochs; with ``early_stopping`` the best weights are
    restored at the end. If the loss turns non-finite, the weights of the last
    finite epoch are restored and a warning is issued; if that happens in the
    first epoch a :class:`FloatingPointError` says what to change. A
    ``KeyboardInterrupt`` stops training, keeps the best weights so far and
    warns. With ``lr_decay_patience`` (learning rate on plateau), every
    ``lr_decay_patience`` epochs without improvement halve the learning rate.
    ``verbose`` selects the progress report (see
    :class:`~skmdn._progress.ProgressReporter`). Returns True when the
    stopping criterion was met.
    """
    reporter = ProgressReporter(verbose, max_iter)
    last_good = _snapshot(network)
    best_state = last_good if early_stopping else None
    for _ in range(max_iter):
        try:
            loss_t, steps = _epoch(network, optimizer, data, batch_size, generator)
            check = loss_t + sum(p.detach().sum() for p in network.parameters()) * 0.0
            loss = float(loss_t) + data.log_scale
            finite = math.isfinite(float(check))
            # Validate inside the try, before any record of this epoch is made,
            # so an interrupt here also keeps the history consistent.
            score = math.nan
            if early_stopping and finite:
                score = (
                    mean_log_likelihood(network, data.X_val, data.Y_val, data.w_val)
                    - data.log_scale
                )
        except KeyboardInterrupt:
            reporter.close()
            _restore(network, best_state if best_state is not None else last_good)
            warnings.warn(
                f"Training interrupted by the user after {history.n_iter} epochs; "
                "the model keeps the best weights found so far.",
                UserWarning,
                stacklevel=3,
            )
            return False
        if not finite:
            reporter.close()
            if history.n_iter == 0:
                raise FloatingPointError(
                    "The training loss became non-finite in the first epoch. Lower "
                    "learning_rate_init, raise min_scale, or check the data for "
                    "extreme values (standardize=True helps)."
                )
            _restore(network, last_good)
            warnings.warn(
                f"The training loss became non-finite in epoch {history.n_iter + 1}; "
                f"the weights of epoch {history.n_iter} were restored and training "
                "stopped. Lower learning_rate_init or raise min_scale.",
                ConvergenceWarning,
                stacklevel=3,
            )
            return False
        last_good = _snapshot(network)
        history.n_iter += 1
        history.t += steps
        history.loss_curve.append(loss)
        if early_stopping:
            history.validation_scores.append(score)
            if score < history.best_validation_score + tol:
                history.no_improvement_count += 1
            else:
                history.no_improvement_count = 0
            if score > history.best_validation_score:
                history.best_validation_score = score
                best_state = last_good
        else:
            if loss > history.best_loss - tol:
                history.no_improvement_count += 1
            else:
                history.no_improvement_count = 0
        history.best_loss = min(history.best_loss, loss)
        if (
            lr_decay_patience
            and history.no_improvement_count
            and history.no_improvement_count % lr_decay_patience == 0
        ):
            for group in optimizer.param_groups:
                group["lr"] *= 0.5
        reporter.update(history.n_iter, loss, -score if early_stopping else None)
        if stopping and history.no_improvement_count > n_iter_no_change:
            reporter.close()
            if early_stopping:
                _restore(network, best_state)
            return True
    reporter.close()
    if early_stopping and best_state is not None:
        _restore(network, best_state)
    return False
