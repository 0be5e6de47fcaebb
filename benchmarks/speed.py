"""Speed benchmark: skmdn against a textbook PyTorch MDN, in one run.

Usage::

    python benchmarks/speed.py            # full table (about 10-15 min on 2 cores)
    python benchmarks/speed.py --quick    # smaller N, fewer ``blocks`` turns (~3 min)

Problems: Bishop's inverse sine (1 feature, 1 output) and a synthetic
10-feature, 2-output bimodal problem. Configurations:

- ``baseline``: the common textbook way, in float32: a two-hidden-layer MLP of
  the same size, loss ``MixtureSameFamily(...).log_prob``, Adam, a
  ``DataLoader`` over a ``TensorDataset`` at batch 256 with ``shuffle=True``.
- ``skmdn-f64``: ``MDNRegressor`` with its defaults on float64 ``X``.
- ``skmdn-f32``: ``MDNRegressor`` on float32 ``X`` (``precision='auto'``
  follows X; ``precision='float32'`` is the same).

The ``latency`` section times single calls on 1 to 256 rows (streaming with
``partial_fit``, serving with ``predict`` and the distribution's methods,
the fixed cost of ``fit``) against scikit-learn's ``MLPRegressor`` of the same
hidden layers where it has the call; its calls take turns, round after round.

Every timing is the median of several runs, except the time-to-target
section (one fit per configuration) and the memory section (one process
each); ratios are against the baseline measured in the same run. The FLOP
limit of a configuration is the measured matmul GFLOP/s (of its dtype, at
the thread count in use; the best of several measurements during the run,
see ``Peak``) divided by ``6 x n_parameters`` FLOPs per training sample
(forward + backward).
Peak memory is measured in a fresh child process per configuration
(``VmHWM``, reset once the data exist), as the peak RSS minus the RSS once
the data exist.
"""

from __future__ import annotations

import argparse
import copy
import functools
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skmdn import MDNRegressor

HIDDEN = (64, 64)
SECTIONS = "steps,blocks,throughput,threads,ttt,inference,memory,latency"
K = 5
BASE_BATCH = 256
LARGE_BATCH = 8192


# ------------------------------------------------------------------ problems
def make_inverse_sine(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x ~ U(0, 1), t = x + 0.3 sin(2 pi x) + U(-0.1, 0.1); regress x on t."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, n)
    t = x + 0.3 * np.sin(2.0 * np.pi * x) + rng.uniform(-0.1, 0.1, n)
    return t[:, None], x


def make_synth10(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """10 features, 2 outputs, two modes whose weight and noise depend on x."""
    rng = np.random.default_rng(seed)
    W = np.random.default_rng(1234).normal(size=(10, 2)) / np.sqrt(10)
    X = rng.normal(size=(n, 10))
    mode = rng.random(n) < 1.0 / (1.0 + np.exp(-2.0 * X[:, 0]))
    shift = np.where(mode[:, None], [1.0, -0.5], [-1.0, 0.5])
    noise = 0.1 * (1.0 + np.abs(X[:, 1:2])) * rng.normal(size=(n, 2))
    return np.tanh(X @ W) + shift + noise, np.asarray(X)


PROBLEMS = {
    "sine": lambda n, seed=0: make_inverse_sine(n, seed),
    "synth10": lambda n, seed=0: make_synth10(n, seed)[::-1],
}


def get_problem(name: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    X, y = PROBLEMS[name](n, seed)
    return np.ascontiguousarray(X, dtype=np.float64), np.ascontiguousarray(y)


def n_params(n_features: int, n_outputs: int) -> int:
    sizes = [n_features, *HIDDEN, K + 2 * K * n_outputs]
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


# ------------------------------------------------------------------ baseline
class TextbookMDN(nn.Module):
    """Two hidden layers and a head for logits, means and scales."""

    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.d = n_outputs
        self.net = nn.Sequential(
            nn.Linear(n_features, HIDDEN[0]),
            nn.Tanh(),
            nn.Linear(HIDDEN[0], HIDDEN[1]),
            nn.Tanh(),
            nn.Linear(HIDDEN[1], K + 2 * K * n_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.distributions.Distribution:
        out = self.net(x)
        logits = out[:, :K]
        mu = out[:, K : K + K * self.d].reshape(-1, K, self.d)
        sigma = F.softplus(out[:, K + K * self.d :]).reshape(-1, K, self.d) + 1e-3
        D = torch.distributions
        return D.MixtureSameFamily(
            D.Categorical(logits=logits), D.Independent(D.Normal(mu, sigma), 1)
        )


class Baseline:
    """The textbook loop, float32, with standardised X and y."""

    def __init__(self, epochs: int, batch_size: int = BASE_BATCH, seed: int = 0):
        self.epochs, self.batch_size, self.seed = epochs, batch_size, seed

    def fit(self, X, y, X_val=None, y_val=None, callback=None, patience=10):
        torch.manual_seed(self.seed)
        Y = y.reshape(len(y), -1)
        self.xm, self.xs = X.mean(0), X.std(0)
        self.ym, self.ys = Y.mean(0), Y.std(0)
        Xt = torch.as_tensor((X - self.xm) / self.xs, dtype=torch.float32)
        Yt = torch.as_tensor((Y - self.ym) / self.ys, dtype=torch.float32)
        self.model = TextbookMDN(X.shape[1], Y.shape[1])
        opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(Xt, Yt),
            batch_size=self.batch_size,
            shuffle=True,
        )
        best, bad = -math.inf, 0
        for _ in range(self.epochs):
            for xb, yb in loader:
                loss = -self.model(xb).log_prob(yb).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            if callback is not None:
                score = self.score(X_val, y_val)
                callback(score)
                bad = 0 if score > best + 1e-4 else bad + 1
                best = max(best, score)
                if bad > patience:
                    break
        return self

    def dist(self, X):
        with torch.no_grad():
            Xt = torch.as_tensor((X - self.xm) / self.xs, dtype=torch.float32)
            return self.model(Xt)

    def predict(self, X):
        return self.dist(X).mean.double().numpy() * self.ys + self.ym

    def score(self, X, y):
        Y = torch.as_tensor((y.reshape(len(y), -1) - self.ym) / self.ys)
        with torch.no_grad():
            lp = self.dist(X).log_prob(Y.float()).double()
        return float(lp.mean()) - float(np.log(self.ys).sum())

    def sample(self, X):
        with torch.no_grad():
            return self.dist(X).sample().double().numpy() * self.ys + self.ym


# ------------------------------------------------------------------- helpers
def skmdn_model(config: str, **kw) -> MDNRegressor:
    params = dict(n_components=K, hidden_layer_sizes=HIDDEN, random_state=0)
    if config == "skmdn-f32-p":
        params["precision"] = "float32"
    params.update(kw)
    return MDNRegressor(**params)


def prepare_X(config: str, X: np.ndarray) -> np.ndarray:
    return X.astype(np.float32) if config == "skmdn-f32" else X


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def matmul_gflops(dtype: torch.dtype, n: int = 1024, repeats: int = 20) -> float:
    """The machine's matmul GFLOP/s: the best of ``repeats`` 1024^2 products.

    The best, not the median: it is a limit, and one busy moment on a shared
    core would otherwise lower it (medians varied 3x between runs here).
    """
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times) / 1e9


def omp_note() -> str:
    """A warning for a run with ``OMP_NUM_THREADS`` set, else ``""``.

    skmdn takes the variable as a cap on its threads (``torch_thread_budget``,
    for joblib's workers); the baseline follows ``torch.set_num_threads``
    alone, so where a run sets more torch threads than the variable allows
    (``--threads``, the ``threads`` section) the two do not compare.
    """
    value = os.environ.get("OMP_NUM_THREADS", "")
    if not value:
        return ""
    return (
        f"note: OMP_NUM_THREADS={value} caps skmdn's threads but not the "
        "baseline's: where this run sets more torch threads (--threads, the "
        "threads section) the two do not compare; unset it to measure threads."
    )


def fmt_table(header: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
        for r in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def fit_epochs(config, X, y, epochs, batch_size="auto"):
    if config == "baseline":
        return Baseline(
            epochs, batch_size=BASE_BATCH if batch_size == "auto" else batch_size
        ).fit(X, y)
    # No validation split: every row is trained on, as in the baseline (the
    # time-to-target section measures fits with validation).
    model = skmdn_model(
        config,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=epochs + 1,
        batch_size=batch_size,
        early_stopping=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(prepare_X(config, X), y)


def matmul_ceiling(n_features: int, n_outputs: int, batch: int, repeats: int) -> float:
    """Samples/s if a float32 training step were only its matrix products.

    The forward ``addmm`` of each layer and the backward products (weight
    gradients of every layer, input gradients of all but the first), on
    random tensors of the network's shapes: what the layer widths allow
    before any elementwise work, a ceiling for the "share of the FLOP limit".
    """
    sizes = [n_features, *HIDDEN, K + 2 * K * n_outputs]
    acts = [torch.randn(batch, s) for s in sizes]
    weights = [torch.randn(b, a) for a, b in itertools.pairwise(sizes)]
    biases = [torch.randn(b) for b in sizes[1:]]

    def step():
        for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
            torch.addmm(b, acts[i], W.t())
        for i, W in enumerate(weights):
            acts[i + 1].t() @ acts[i]  # dW
            if i:
                acts[i + 1] @ W  # dX

    step()
    return batch / median_time(step, max(repeats, 5))


# ---------------------------------------------------------------- sections
class Peak:
    """The matmul GFLOP/s of each dtype: the best of every measurement made
    during the run (:func:`matmul_gflops`).

    This VM's speed drifts by 15-20 % over minutes (the best of 20 products
    gave 156-198 GFLOP/s in different runs of one day), so a limit measured
    once, in a slow moment, would flatter every share computed from it. The
    throughput section measures again before each problem in each of its
    passes and after the last, and divides by the highest value seen.
    """

    def __init__(self) -> None:
        self.seen: dict[str, list[float]] = {"float32": [], "float64": []}
        self.measure()

    def measure(self) -> None:
        for name in self.seen:
            self.seen[name].append(matmul_gflops(getattr(torch, name)))

    def __getitem__(self, name: str) -> float:
        return max(self.seen[name])

    def summary(self) -> str:
        return ", ".join(
            f"{name} {self[name]:.1f} (measured "
            + " / ".join(f"{g:.0f}" for g in values)
            + ")"
            for name, values in self.seen.items()
        )


def section_throughput(args, gflops: Peak) -> str:
    """Whole fits, samples/s, with the share of the FLOP limit.

    Each row's repeats are spread over the section: it runs in passes, every
    pass fits each row once (and measures the products alone once per
    problem, and matmul before each problem), and a row's figure is the
    median over its passes: ``repeats + 2`` for skmdn's fits (a second or
    less each), ``repeats`` for the baseline's (10-15 s each at 1e6 rows).
    Run back to back, a row's three fits took about as long as the VM's
    slow spells last (seconds to a minute), so one spell could set a row's
    median (the 2026-12-04 17:14 run: synth10 at 1e6 rows and the products
    measured right after it at 60 % of the speed of every other row);
    spread over passes 30-60 s apart, a spell meets one repeat of a row,
    not all of them. The speed of the same products drifted from 1.0 to
    3.3 million rows/s within a minute here (17:47), hence the extra
    repeats where they are cheap.
    """
    configs = ["baseline", "skmdn-f64", "skmdn-f32"]
    plan = []  # (problem, n, batch, config, epochs, repeats)
    for problem in PROBLEMS:
        for n in args.sizes:
            epochs = max(1, int(args.samples // n))
            few = args.quick and n * epochs > 2e5
            for bs in (BASE_BATCH, LARGE_BATCH):
                for config in configs:
                    reps = 1 if few else args.repeats + 2 * (config != "baseline")
                    if config != "baseline" or bs == BASE_BATCH:
                        plan.append((problem, n, bs, config, epochs, reps))
    data = {(p, n): get_problem(p, n) for p in PROBLEMS for n in args.sizes}
    seconds: dict[tuple, list[float]] = {key: [] for key in plan}
    ceiling: dict[str, list[float]] = {p: [] for p in PROBLEMS}
    passes = args.repeats + 2
    for turn in range(passes):
        for problem in PROBLEMS:
            gflops.measure()
            for key in plan:
                _, n, bs, config, epochs, reps = key
                if key[0] != problem or turn >= reps:
                    continue
                X, y = data[problem, n]
                t0 = time.perf_counter()
                fit_epochs(config, X, y, epochs, bs)
                seconds[key].append(time.perf_counter() - t0)
            X, y = data[problem, args.sizes[0]]
            d = 1 if y.ndim == 1 else y.shape[1]
            ceiling[problem].append(
                matmul_ceiling(X.shape[1], d, LARGE_BATCH, args.repeats)
            )
        print(f"throughput: pass {turn + 1} of {passes} done", flush=True)
    gflops.measure()

    def share(rate: float, problem: str, dtype: str) -> str:
        X, y = data[problem, args.sizes[0]]
        P = n_params(X.shape[1], 1 if y.ndim == 1 else y.shape[1])
        return f"{100 * rate * 6 * P / (gflops[dtype] * 1e9):.1f} %"

    rows, base = [], None
    last = {key[0]: key for key in plan}  # each problem's last row
    for key in plan:
        problem, n, bs, config, epochs, _ = key
        rate = n * epochs / float(np.median(seconds[key]))
        base = rate if config == "baseline" else base
        dtype = "float64" if config == "skmdn-f64" else "float32"
        ratio = f"{rate / base:.2f}x" if bs == BASE_BATCH else "-"
        row = [problem, f"{n:.0e}", bs, config, epochs, f"{rate:,.0f}", ratio]
        rows.append([*row, share(rate, problem, dtype)])
        if key == last[problem]:
            rate = float(np.median(ceiling[problem]))
            cells = [problem, "-", LARGE_BATCH, "matmuls only (f32)", "-"]
            rows.append([*cells, f"{rate:,.0f}", "-", share(rate, problem, "float32")])
    return fmt_table(
        [
            "problem",
            "N",
            "batch",
            "config",
            "epochs",
            "samples/s",
            "vs baseline",
            "of FLOP limit",
        ],
        rows,
    )


def section_time_to_target(args) -> str:
    """Validation NLL against wall time; target = best over configs + 0.02 nats."""
    from sklearn.model_selection import train_test_split

    import skmdn._training as training

    rows = []
    for problem in PROBLEMS:
        for n in args.ttt_sizes:
            X, y = get_problem(problem, n)
            max_epochs = max(3, int(args.ttt_samples // n))
            curves: dict[str, list[tuple[float, float]]] = {}
            for config in ["baseline", "skmdn-f64", "skmdn-f32"]:
                if config == "baseline":
                    X_tr, X_val, y_tr, y_val = train_test_split(
                        X, y, test_size=int(np.ceil(0.1 * n)), random_state=0
                    )
                    curve = []
                    t0 = time.perf_counter()
                    Baseline(max_epochs).fit(
                        X_tr,
                        y_tr,
                        X_val,
                        y_val,
                        callback=lambda s, c=curve, t0=t0: c.append(
                            (time.perf_counter() - t0, -s)
                        ),
                    )
                else:
                    curve = []
                    original = training.mean_log_likelihood

                    def record(*a, c=curve, orig=original, **kw):
                        value = orig(*a, **kw)
                        c.append((time.perf_counter(), value))
                        return value

                    model = skmdn_model(
                        config, max_iter=max_epochs, early_stopping=True
                    )
                    training.mean_log_likelihood = record
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            t0 = time.perf_counter()
                            model.fit(prepare_X(config, X), y)
                    finally:
                        training.mean_log_likelihood = original
                    curve = [
                        (t - t0, -s)
                        for (t, _), s in zip(
                            curve, model.validation_scores_, strict=True
                        )
                    ]
                curves[config] = curve
            best = min(nll for c in curves.values() for _, nll in c)
            base_t = None
            for config, curve in curves.items():
                hit = [t for t, nll in curve if nll <= best + 0.02]
                t = hit[0] if hit else math.nan
                if config == "baseline":
                    base_t = t
                rows.append(
                    [
                        problem,
                        f"{n:.0e}",
                        config,
                        len(curve),
                        f"{min(nll for _, nll in curve):.4f}",
                        f"{t:.2f}" if hit else f"not in {curve[-1][0]:.1f}",
                        f"{base_t / t:.2f}x" if hit and base_t == base_t else "-",
                    ]
                )
                print(rows[-1], flush=True)
    return fmt_table(
        [
            "problem",
            "N",
            "config",
            "epochs",
            "best val NLL",
            "time to best+0.02 (s)",
            "speed-up vs baseline",
        ],
        rows,
    )


def section_inference(args) -> str:
    rows = []
    n = args.infer_n
    for problem in PROBLEMS:
        X_fit, y_fit = get_problem(problem, 4096)
        X, y = get_problem(problem, n, seed=1)
        base = {}
        for config in ["baseline", "skmdn-f64", "skmdn-f32"]:
            model = fit_epochs(config, X_fit, y_fit, 1)
            Xc = prepare_X(config, X)
            if config == "baseline":
                ops = {
                    "predict": lambda m=model, X=X: m.predict(X),
                    "logpdf": lambda m=model, X=X, y=y: m.score(X, y),
                    "score": lambda m=model, X=X, y=y: m.score(X, y),
                    "sample": lambda m=model, X=X: m.sample(X),
                }
            else:
                ops = {
                    "predict": lambda m=model, Xc=Xc: m.predict(Xc),
                    "logpdf": lambda m=model, Xc=Xc, y=y: m.predict_dist(Xc).logpdf(y),
                    "score": lambda m=model, Xc=Xc, y=y: m.score(Xc, y),
                    "sample": lambda m=model, Xc=Xc: m.sample(Xc, random_state=0),
                }
            for op, fn in ops.items():
                fn()
                t = median_time(fn, args.repeats)
                if config == "baseline":
                    base[op] = t
                rows.append(
                    [
                        problem,
                        f"{n:.0e}",
                        op,
                        config,
                        f"{t:.3f}",
                        f"{base[op] / t:.2f}x",
                    ]
                )
                print(rows[-1], flush=True)
    return fmt_table(
        ["problem", "rows", "operation", "config", "seconds", "speed-up vs baseline"],
        rows,
    )


def latency_calls(problem: str) -> list[tuple[str, int, object, object]]:
    """``(call, rows, skmdn call, MLPRegressor call or None)`` on ``problem``.

    Fitted models (default ``MDNRegressor`` but ``max_iter=20``; an
    ``MLPRegressor`` of the same hidden layers) on 2000 rows; ``partial_fit``
    continues a copy of the fitted model on 256 rows; ``fit`` is a fresh
    model with ``max_iter=1`` on 200 rows (the fixed cost of a fit, with its
    validation split); the others run on the first 1 or 100 rows of new data.
    """
    from sklearn.neural_network import MLPRegressor

    X, y = get_problem(problem, 2000)
    X_new, y_new = get_problem(problem, 256, seed=1)
    X_fit, y_fit = get_problem(problem, 200, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = skmdn_model("skmdn-f64", max_iter=20).fit(X, y)
        mlp = MLPRegressor(hidden_layer_sizes=HIDDEN, max_iter=20, random_state=0).fit(
            X, y
        )
    streamed = copy.deepcopy(model)  # partial_fit changes it: not the one timed

    def fit_once():
        return skmdn_model("skmdn-f64", max_iter=1).fit(X_fit, y_fit)

    def mlp_fit_once():
        return MLPRegressor(hidden_layer_sizes=HIDDEN, max_iter=1, random_state=0).fit(
            X_fit, y_fit
        )

    calls = [
        ("partial_fit", 256, lambda: streamed.partial_fit(X_new, y_new),
         lambda: mlp.partial_fit(X_new, y_new)),
        ("fit max_iter=1", 200, fit_once, mlp_fit_once),
    ]  # fmt: skip
    for n in (1, 100):
        Xn, yn = X_new[:n], y_new[:n]
        calls += [
            ("predict", n, lambda Xn=Xn: model.predict(Xn),
             lambda Xn=Xn: mlp.predict(Xn)),
            ("predict_dist(X).logpdf(y)", n,
             lambda Xn=Xn, yn=yn: model.predict_dist(Xn).logpdf(yn), None),
            ("score", n, lambda Xn=Xn, yn=yn: model.score(Xn, yn), None),
            ("sample", n, lambda Xn=Xn: model.sample(Xn, random_state=0), None),
            ("predict_interval", n, lambda Xn=Xn: model.predict_interval(Xn), None),
        ]  # fmt: skip
    return calls


def section_latency(args) -> str:
    """Per-call time on small inputs (streaming and serving), against
    scikit-learn's ``MLPRegressor`` where it has the call: medians of
    ``args.latency_repeats`` calls, every call taking its turn in each round."""
    rows = []
    for problem in PROBLEMS:
        calls = latency_calls(problem)
        times = [([], []) for _ in calls]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # max_iter=1: ConvergenceWarning
            for _ in range(1 + args.latency_repeats):  # the first is warm-up
                for (_, _, ours, theirs), (mine, base) in zip(
                    calls, times, strict=True
                ):
                    for fn, out in ((ours, mine), (theirs, base)):
                        if fn is not None:
                            t0 = time.perf_counter()
                            fn()
                            out.append(time.perf_counter() - t0)
        for (call, n, _, _), (mine, base) in zip(calls, times, strict=True):
            ours = 1e3 * float(np.median(mine[1:]))
            theirs = 1e3 * float(np.median(base[1:])) if base else None
            rows.append(
                [
                    problem,
                    call,
                    n,
                    f"{ours:.3f}",
                    "-" if theirs is None else f"{theirs:.3f}",
                    "-" if theirs is None else f"{ours / theirs:.2f}x",
                ]
            )
            print(rows[-1], flush=True)
    return fmt_table(
        ["problem", "call", "rows", "skmdn ms", "MLPRegressor ms", "ratio"], rows
    )


def child_memory(spec: dict) -> dict:
    """Run in a fresh process: fit or predict once and report memory."""

    def rss_mb(field: str = "VmRSS") -> float:
        with open("/proc/self/status") as f:
            line = next(x for x in f if x.startswith(field + ":"))
        return int(line.split()[1]) / 1024

    def reset_peak() -> None:  # Linux: VmHWM restarts from the current RSS
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    torch.set_num_threads(spec["threads"])
    config, problem = spec["config"], spec["problem"]
    if spec["task"] == "fit":
        X, y = get_problem(problem, spec["n"])
        X = prepare_X(config, X) if config != "baseline" else X
        before = rss_mb()
        reset_peak()
        fit_epochs(config, X, y, 1, spec.get("batch", "auto"))
    else:
        X_fit, y_fit = get_problem(problem, 4096)
        model = fit_epochs(config, X_fit, y_fit, 1)
        X, y = get_problem(problem, spec["n"], seed=1)
        X = prepare_X(config, X)
        before = rss_mb()
        reset_peak()
        if spec["task"] == "predict":
            model.predict(X)
        else:
            model.score(X, y)
    peak = rss_mb("VmHWM")
    return {
        "data_mb": (X.nbytes + y.nbytes) / 2**20,
        "before_mb": before,
        "peak_extra_mb": peak - before,
    }


def run_child(spec: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def section_memory(args) -> str:
    rows = []
    specs = []
    for n in args.mem_fit_sizes:
        for config in ["baseline", "skmdn-f64", "skmdn-f32"]:
            specs.append({"task": "fit", "n": n, "config": config})
        specs.append(
            {"task": "fit", "n": n, "config": "skmdn-f32", "batch": LARGE_BATCH}
        )
    for n in args.mem_predict_sizes:
        for config in ["baseline", "skmdn-f64", "skmdn-f32"]:
            for task in ("predict", "score"):
                if config == "baseline" and n > 1e6:
                    continue
                specs.append({"task": task, "n": n, "config": config})
    for spec in specs:
        spec.update(problem="synth10", threads=torch.get_num_threads())
        r = run_child(spec)
        rows.append(
            [
                spec["task"],
                f"{spec['n']:.0e}",
                spec["config"],
                spec.get("batch", "auto" if spec["task"] == "fit" else "-"),
                f"{r['data_mb']:.0f}",
                f"{r['peak_extra_mb']:.0f}",
            ]
        )
        print(rows[-1], flush=True)
    return fmt_table(
        ["task", "N", "config", "batch", "X+y MB", "peak RSS above data (MB)"], rows
    )


def section_threads(args) -> str:
    """Training step time with 1 and 2 threads, small and large batch."""
    rows = []
    X, y = get_problem("synth10", 1 << 15)
    saved = torch.get_num_threads()
    for config in ["baseline", "skmdn-f32", "skmdn-f64"]:
        for bs in (BASE_BATCH, LARGE_BATCH):
            if config == "baseline" and bs != BASE_BATCH:
                continue
            per_thread = {}
            for threads in (1, 2):
                torch.set_num_threads(threads)
                epochs = 2 if bs == BASE_BATCH else 8
                t = median_time(
                    lambda c=config, b=bs, e=epochs: fit_epochs(c, X, y, e, b),
                    args.repeats,
                )
                per_thread[threads] = t / (epochs * math.ceil(len(X) / bs)) * 1e3
            rows.append(
                [
                    config,
                    bs,
                    f"{per_thread[1]:.3f}",
                    f"{per_thread[2]:.3f}",
                    f"{per_thread[1] / per_thread[2]:.2f}x",
                ]
            )
            print(rows[-1], flush=True)
    torch.set_num_threads(saved)
    return fmt_table(
        [
            "config",
            "batch",
            "ms/step 1 thread",
            "ms/step 2 threads",
            "2-thread speed-up",
        ],
        rows,
    )


def step_problem(problem: str) -> tuple[torch.Tensor, torch.Tensor]:
    """50 000 float32 rows ``(X, Y)`` of ``problem`` for the step sections."""
    X, y = get_problem(problem, 50_000)
    Y = y.reshape(len(y), -1)
    return torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(
        Y, dtype=torch.float32
    )


def step_network(Xt: torch.Tensor, Yt: torch.Tensor):
    """The estimator's default network for these shapes, float32, seed 0."""
    from skmdn._network import MDNNetwork

    net = MDNNetwork(Xt.shape[1], Yt.shape[1], K, HIDDEN, "tanh", "diagonal", 1e-3)
    net.reset_parameters(torch.Generator().manual_seed(0))
    return net.float()


def section_steps(args) -> str:
    """Before and after each training-step optimisation, in one run.

    Microseconds per step, float32, 1 thread, on the model the estimator
    builds, at batch 256 and 8192: the optimiser and the backward pass are
    swapped one at a time. The variants take turns (medians over 3 x
    repeats turns, at least 15, after one warm-up turn).
    """
    from skmdn import _fused, _kernels
    from skmdn._backprop import ManualBackprop
    from skmdn._mixture import mixture_log_prob
    from skmdn._training import FlatAdam, batch_loss

    def torch_adam(net):
        decay = [p for n, p in net.named_parameters() if n.endswith("weight")]
        rest = [p for n, p in net.named_parameters() if n.endswith("bias")]
        groups = [{"params": decay, "weight_decay": 1e-8}, {"params": rest}]
        return torch.optim.Adam(groups, lr=3e-3, fused=True)

    def autograd_loss(net, x, y, w):
        return -(w * mixture_log_prob(net(x), y)).sum()

    # the last lever: tanh in the form this machine measures fastest
    # (skmdn._kernels); the rows before it use torch.tanh
    measured = _kernels.tanh_forms(torch.float32)
    described = {
        "torch": "torch.tanh (measured fastest)",
        "sigmoid": "2 sigmoid(2x) - 1",
        "numpy": "numpy.tanh in place",
    }
    tanh_row = "+ tanh as " + described[measured.in_place]
    native = _kernels.TanhForms("torch", "torch")
    # name: (optimiser, loss, tanh as measured, compiled levers: 1 the
    # mixture loss, 2 and Adam's update, 3 and the rows gathered straight
    # into the workspace, 4 and the whole block in one call)
    variants = {
        "torch Adam(fused=True) + autograd loss": (torch_adam, autograd_loss, 0, 0),
        "FlatAdam + autograd loss": (None, autograd_loss, 0, 0),
        "FlatAdam + fused loss": (None, batch_loss, 0, 0),
        "FlatAdam + hand-written backprop": (None, None, 0, 0),
        tanh_row: (None, None, 1, 0),
    }
    if _fused._cmixture is not None:
        variants["+ compiled mixture loss"] = (None, None, 1, 1)
        variants["+ compiled Adam update (one pass)"] = (None, None, 1, 2)
        gathered = "+ rows gathered into the workspace"
        if _fused.blas_available():
            variants[gathered] = (None, None, 1, 3)
            variants["+ whole block in one compiled call (skmdn)"] = (None, None, 1, 4)
        else:  # torch's BLAS not found: skmdn is the row before
            variants[gathered + " (skmdn)"] = (None, None, 1, 3)
    else:  # the install could not build it: skmdn is the row before
        variants[tanh_row + " (skmdn; no compiled loss)"] = variants.pop(tanh_row)
    adam_step = _fused.adam_step

    def torch_update(*args) -> bool:  # declines: FlatAdam's torch operations
        return False

    rows = []
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    for problem in PROBLEMS:
        Xt, Yt = step_problem(problem)
        packed = torch.cat([Xt, Yt, torch.ones(len(Xt), 1)], dim=1)
        for batch in (BASE_BATCH, LARGE_BATCH):
            w = torch.full((len(Xt),), 1.0 / batch)
            runs = []
            for name, (make_opt, loss_fn, tanh_fast, compiled) in variants.items():
                net = step_network(Xt, Yt)
                opt = make_opt(net) if make_opt else FlatAdam(net, 3e-3, 1e-8)
                manual = ManualBackprop(net) if loss_fn is None else None
                gen = torch.Generator().manual_seed(0)
                batches = torch.randperm(len(Xt), generator=gen).split(batch)[:-1]
                batches = batches[: 10_000 // BASE_BATCH]

                def run(net=net, opt=opt, loss_fn=loss_fn, manual=manual,
                        batches=batches, Xt=Xt, Yt=Yt, w=w, packed=packed,
                        gather=compiled >= 3):  # fmt: skip
                    for idx in batches:
                        if gather:  # as a training block gathers its rows
                            n = len(idx)
                            manual.rows(packed, idx, slice(0, n), Xt.shape[1], n)
                        elif manual is not None:
                            manual(Xt[idx], Yt[idx], w[idx])
                        else:
                            loss = loss_fn(net, Xt[idx], Yt[idx], w[idx])
                            if isinstance(opt, FlatAdam):
                                opt.zero_grad()
                            else:
                                opt.zero_grad(set_to_none=True)
                            loss.backward()
                        opt.step()

                runs.append((name, run, tanh_fast, compiled, len(batches)))
            # the variants take turns, so that a slow spell hits them all
            times = {name: [] for name, *_ in runs}
            for turn in range(1 + 3 * max(args.repeats, 5)):
                for name, run, tanh_fast, compiled, n_batches in runs:
                    _kernels._choice[torch.float32] = measured if tanh_fast else native
                    _fused.ENABLED = bool(compiled)
                    _fused.BLOCKS = compiled >= 4
                    _fused.adam_step = adam_step if compiled >= 2 else torch_update
                    t0 = time.perf_counter()
                    run()
                    if turn:  # the first turn warms up
                        times[name].append((time.perf_counter() - t0) / n_batches)
            base = None
            for name, *_ in runs:
                t = float(np.median(times[name])) * 1e6
                base = base or t
                rows.append([problem, batch, name, f"{t:.0f}", f"{base / t:.2f}x"])
                print(rows[-1], flush=True)
    _kernels._choice[torch.float32] = measured
    _fused.ENABLED, _fused.BLOCKS, _fused.adam_step = True, True, adam_step
    torch.set_num_threads(saved)
    return fmt_table(
        ["problem", "batch", "training step", "us/step", "vs first row"], rows
    )


def section_blocks(args) -> str:
    """A large-batch step on 2 cores: the batch in blocks on worker threads
    (skmdn) against the whole batch with 2 torch threads per kernel (before).

    float32, batch 8192, the estimator's network, each step with its FlatAdam
    update, each way with torch's thread count as in a fit (2 for the whole
    batch on 2 threads, else 1). The ways take turns (so that a slow spell
    of the machine hits them all), 4 steps per turn of which the first is
    not timed (it may meet OpenMP threads still spinning from the previous
    way); medians over all turns. The last column says whether a step's
    gradient has the same bits as on one thread (the blocks in turn on one
    worker, for the blocked ways). The four ways before the compiled ones
    run each block through torch's products (``_fused.BLOCKS`` off); then
    each block compiled, the second on the pool's worker (``_fused.HELPER``
    off), and skmdn's: the second posted to the helper's spinning loop.
    """
    from skmdn import _fused
    from skmdn._backprop import BlockedBackprop, ManualBackprop
    from skmdn._training import FlatAdam

    turns = 30 if args.quick else 80
    saved = torch.get_num_threads()
    rows = []
    for problem in PROBLEMS:
        Xt, Yt = step_problem(problem)
        w = torch.full((len(Xt),), 1.0 / LARGE_BATCH)
        net = step_network(Xt, Yt)
        opt = FlatAdam(net, 3e-3, 1e-8)
        whole = ManualBackprop(net)
        blocked = BlockedBackprop(net, opt.grad)
        gen = torch.Generator().manual_seed(0)
        batches = torch.randperm(len(Xt), generator=gen).split(LARGE_BATCH)[:-1]
        before = "whole batch, 2 torch threads per kernel (before)"
        on_1 = functools.partial(blocked, workers=1)
        on_2 = functools.partial(blocked, workers=2)
        ways = {  # name: (torch threads, step, the block compiled, the helper)
            "whole batch, 1 thread": (1, whole, False, False),
            before: (2, whole, False, False),
            "2 blocks, 1 worker": (1, on_1, False, False),
            "2 blocks on 2 workers, 1 torch thread each": (1, on_2, False, False),
        }
        if _fused.blas_available():
            ways["the same, each block one compiled call"] = (1, on_2, True, False)
        if _fused.blas_available() and _fused.helper_available():
            skmdn = "+ the second block to the helper's loop (skmdn)"
            ways[skmdn] = (1, on_2, True, True)
        grads, one_worker = {}, {}
        first = Xt[batches[0]], Yt[batches[0]], w[batches[0]]
        for name, (threads, step, compiled, helper) in ways.items():  # same weights
            torch.set_num_threads(threads)
            _fused.BLOCKS, _fused.HELPER = compiled, helper
            step(*first)
            grads[name] = opt.grad.clone()
            torch.set_num_threads(1)
            blocked(*first, workers=1)  # the reference: the blocks on one thread
            one_worker[name] = opt.grad.clone()
        times = {name: [] for name in ways}
        for turn in range(turns):
            for name, (threads, step, compiled, helper) in ways.items():
                torch.set_num_threads(threads)
                _fused.BLOCKS, _fused.HELPER = compiled, helper
                for k, idx in enumerate(batches[4 * turn % len(batches) :][:4]):
                    t0 = time.perf_counter()
                    step(Xt[idx], Yt[idx], w[idx])
                    opt.step()
                    if k:
                        times[name].append(time.perf_counter() - t0)
        blocked.close()
        base = float(np.median(times[before]))
        for name in ways:
            t = float(np.median(times[name]))
            if "block" in name:
                reference = one_worker[name]
            else:
                reference = grads["whole batch, 1 thread"]
            same = torch.equal(grads[name], reference)
            rows.append(
                [
                    problem,
                    name,
                    f"{t * 1e3:.2f}",
                    f"{base / t:.2f}x",
                    "yes" if same else "no",
                ]
            )
            print(rows[-1], flush=True)
    torch.set_num_threads(saved)
    _fused.BLOCKS = _fused.HELPER = True
    return fmt_table(
        [
            "problem",
            "step at batch 8192, float32",
            "ms/step",
            "vs before",
            "same bits as 1 thread",
        ],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's default)",
    )
    parser.add_argument("--sections", default=SECTIONS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_memory(json.loads(args.child))))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.sizes, args.repeats, args.samples = [10_000, 100_000], 3, 50_000
        args.ttt_sizes, args.ttt_samples = [10_000], 600_000
        args.infer_n, args.mem_fit_sizes = 1_000_000, [100_000]
        args.mem_predict_sizes = [1_000_000]
        args.latency_repeats = 11
    else:
        args.sizes, args.repeats, args.samples = (
            [10_000, 100_000, 1_000_000],
            3,
            300_000,
        )
        args.ttt_sizes, args.ttt_samples = [10_000, 100_000], 3_000_000
        args.infer_n, args.mem_fit_sizes = 1_000_000, [100_000, 1_000_000]
        args.mem_predict_sizes = [1_000_000, 10_000_000]
        args.latency_repeats = 21
    gflops = Peak()
    print(
        f"# skmdn speed benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    if note := omp_note():
        print(note)
    print(f"matmul GFLOP/s at the start: {gflops.summary()}")
    print(f"parameters: sine {n_params(1, 1)}, synth10 {n_params(10, 2)}")
    out = {}
    sections = args.sections.split(",")
    t_start = time.perf_counter()
    if "steps" in sections:
        out["steps"] = section_steps(args)
    if "blocks" in sections:
        out["blocks"] = section_blocks(args)
    if "throughput" in sections:
        out["throughput"] = section_throughput(args, gflops)
    if "threads" in sections:
        out["threads"] = section_threads(args)
    if "ttt" in sections:
        out["ttt"] = section_time_to_target(args)
    if "inference" in sections:
        out["inference"] = section_inference(args)
    if "memory" in sections:
        out["memory"] = section_memory(args)
    if "latency" in sections:
        out["latency"] = section_latency(args)
    for name, table in out.items():
        print(f"\n## {name}\n\n{table}")
    print(f"\nmatmul GFLOP/s, the best seen (the FLOP limit): {gflops.summary()}")
    print(
        f"\ntotal {time.perf_counter() - t_start:.0f} s, "
        f"load average now {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
