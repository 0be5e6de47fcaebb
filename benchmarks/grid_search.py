"""Wall time of a GridSearchCV over MDNRegressor with n_jobs=1 and n_jobs=2.

Usage::

    python benchmarks/grid_search.py [--repeats 3] [--n 2000]

Run it WITHOUT ``OMP_NUM_THREADS`` in the environment (it measures threads):
the serial search then lets torch use every core, as a user's session would.
Configurations, all in one run (ratios are against the first):

- ``n_jobs=1``: serial search, torch with its default threads (one per core).
- ``n_jobs=1, torch 1 thread``: serial search, ``torch.set_num_threads(1)``.
- ``n_jobs=2 loky``: joblib's default backend; each worker gets
  ``OMP_NUM_THREADS = cpu_count // 2`` and torch follows (no oversubscription).
- ``n_jobs=2 loky, oversubscribed``: the same with
  ``parallel_config(inner_max_num_threads=cpu_count)``: what happens when
  worker threads multiply (oversubscription).
- ``n_jobs=2 threading``: two threads in this process sharing torch's pool.

Each search is run once to warm up (worker start-up, imports), then timed
``--repeats`` times; the table shows medians. A search is the 12 cross-validation
fits (on half the rows each) and the refit of the best candidate on all rows,
which runs alone in every configuration.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import joblib
import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skmdn import MDNRegressor


def make_inverse_sine(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, n)
    t = x + 0.3 * np.sin(2.0 * np.pi * x) + rng.uniform(-0.1, 0.1, n)
    return t[:, None], x


def _search(n_jobs: int) -> GridSearchCV:
    model = MDNRegressor(
        hidden_layer_sizes=(64, 64), max_iter=15, tol=0.0, random_state=0
    )
    grid = {"n_components": [1, 3, 5], "noise_type": ["diagonal", "isotropic_across"]}
    return GridSearchCV(
        model, grid, cv=KFold(2, shuffle=True, random_state=0), n_jobs=n_jobs
    )


def _worker_threads() -> int:
    import torch as worker_torch

    return worker_torch.get_num_threads()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    if "OMP_NUM_THREADS" in os.environ:
        print("note: OMP_NUM_THREADS is set; unset it to measure the defaults.")
    X, y = make_inverse_sine(args.n)
    cores = os.cpu_count() or 1
    configs = [
        ("n_jobs=1", 1, {}),
        ("n_jobs=1, torch 1 thread", 1, {"torch_threads": 1}),
        ("n_jobs=2 loky", 2, {"backend": "loky"}),
        (
            "n_jobs=2 loky, oversubscribed",
            2,
            {"backend": "loky", "inner_max_num_threads": cores},
        ),
        ("n_jobs=2 threading", 2, {"backend": "threading"}),
    ]
    rows = []
    default_threads = torch.get_num_threads()
    for name, n_jobs, config in configs:
        config = dict(config)
        torch.set_num_threads(config.pop("torch_threads", default_threads))
        with joblib.parallel_config(**config):
            if n_jobs > 1 and config.get("backend") == "loky":
                threads = joblib.Parallel(n_jobs=n_jobs)(
                    joblib.delayed(_worker_threads)() for _ in range(n_jobs)
                )
            else:
                threads = [torch.get_num_threads()] * n_jobs
            _search(n_jobs).fit(X, y)  # warm-up
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                _search(n_jobs).fit(X, y)
                times.append(time.perf_counter() - start)
        rows.append((name, threads, statistics.median(times), times))
        torch.set_num_threads(default_threads)
    base = rows[0][2]
    print(
        f"GridSearchCV, 6 candidates x 2 folds = 12 fits of 15 epochs and "
        "the refit on all rows, "
        f"n={args.n}, {cores} cores, torch {torch.__version__}, "
        f"median of {args.repeats}"
    )
    print(f"| {'configuration':31s} | torch threads per worker | wall (s) | ratio |")
    print(f"|{'-' * 33}|{'-' * 26}|{'-' * 10}|{'-' * 7}|")
    for name, threads, median, _ in rows:
        print(
            f"| {name:31s} | {threads!s:24s} | {median:8.2f} | {median / base:5.2f} |"
        )


if __name__ == "__main__":
    main()
