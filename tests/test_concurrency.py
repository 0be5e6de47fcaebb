"""One process, several threads: shared models, overlapping fits, and torch's
thread settings (a web server, ``GridSearchCV`` on joblib's threading
backend)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from skmdn import MDNRegressor, _utils
from skmdn._backprop import BlockedBackprop
from skmdn._utils import SMALL_BATCH, run_blocks, torch_threads

from .conftest import exits_when_forked, needs_fork, threads_of_a_new_thread


def _run_blocks_pool(block) -> threading.Thread:
    runner = threading.Thread(
        target=run_blocks, args=(block, [slice(0, 1), slice(1, 2)], 2)
    )
    runner.start()
    return runner


def _blocked_backprop_pool(block) -> BlockedBackprop:
    step = BlockedBackprop(None, torch.zeros(0))  # only its workers are used
    pool = step._workers(2)
    for _ in range(2):
        pool.submit(block, None)
    return step


@pytest.mark.parametrize("start", [_run_blocks_pool, _blocked_backprop_pool])
def test_workers_keep_one_thread_when_another_thread_sets_the_default(
    two_threads, start
):
    """Torch gives a thread the process default at its first use of torch,
    even after a ``set_num_threads`` there. Here another thread stores two
    threads as the default (as an overlapping call does when it ends)
    between the workers' set-up and their first use of torch: they must
    still run on one thread each (they had two, so that their products'
    rounding, and a fit's bits, depended on the timing)."""
    ready, stored, seen = threading.Barrier(3, timeout=10), threading.Event(), []

    def block(rows):  # no torch before the default is stored
        ready.wait()
        stored.wait(10)
        seen.append(torch.get_num_threads())

    running = start(block)
    ready.wait()  # both workers are set up
    torch.set_num_threads(2)  # this thread keeps two; the default is two
    stored.set()
    if isinstance(running, threading.Thread):
        running.join()
    else:
        running.close()
    assert seen == [1, 1]
    assert (torch.get_num_threads(), threads_of_a_new_thread()) == (2, 2)


def test_overlapping_calls_leave_the_default_of_later_threads(two_threads):
    """A thread that starts using torch during another thread's call gets
    that call's one thread as its own count. If its own call (here as
    ``predict`` with ``n_threads=2`` runs: one thread, then blocks on two
    workers) overlaps the other and ends last, it must not leave one thread
    as the count of every thread started later in the process."""
    inside, overlapping, seen = threading.Event(), threading.Event(), {}

    def first():  # e.g. a fit in a server thread
        with torch_threads(1):
            inside.set()
            overlapping.wait(10)

    def second():  # a request thread that first uses torch now
        inside.wait(10)
        seen["own count"] = torch.get_num_threads()
        with torch_threads(1):
            overlapping.set()
            first_thread.join(10)  # the first call ends while this one runs
            run_blocks(lambda rows: None, [slice(0, 1), slice(1, 2)], 2)

    first_thread = threading.Thread(target=first)
    second_thread = threading.Thread(target=second)
    first_thread.start()
    second_thread.start()
    second_thread.join(20)
    assert seen["own count"] == 1  # what torch gave it (a known limitation)
    assert (torch.get_num_threads(), threads_of_a_new_thread()) == (2, 2)


def test_a_thread_left_at_one_does_not_make_one_the_default(two_threads):
    """A thread that took one torch thread during an earlier call, and now
    begins a call while no other runs, must not be taken for the default:
    a call of another thread that overlaps it stores one and then two, and
    the last call to end would put back one for every later thread."""
    started, later = threading.Event(), threading.Event()
    with torch_threads(1):  # this thread's call: a new thread takes one
        seen = []
        left_at_one = threading.Thread(
            target=lambda: (
                seen.append(torch.get_num_threads()),
                started.wait(10),
                _call_until(later),
            )
        )
        left_at_one.start()
    started.set()  # the earlier call has ended: the default is two again
    while _utils._calls == 0 and left_at_one.is_alive():
        threading.Event().wait(0.001)
    with torch_threads(1):  # overlaps the call of the thread left at one
        pass
    later.set()
    left_at_one.join(10)
    assert seen == [1]
    assert (torch.get_num_threads(), threads_of_a_new_thread()) == (2, 2)


def _call_until(event: threading.Event) -> None:
    with torch_threads(1):  # its count is one already: nothing to set
        event.wait(10)


def _one_call_in_the_child() -> None:
    with torch_threads(1):
        pass
    assert _utils._calls == 0


@needs_fork
def test_a_fork_during_a_call_leaves_the_child_no_call_running(two_threads):
    """A process forked while a call runs (here in this thread) copies the
    count of running calls; the child has no such call, and with the count
    left at one its calls would never be the last to end, so the default
    would never be put back there."""
    with torch_threads(1):
        assert _utils._calls == 1
        assert exits_when_forked(_one_call_in_the_child)


# short fits on purpose: their ConvergenceWarning is not what is tested
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_concurrent_fits_and_predictions_are_bit_identical(two_threads):
    """Two fits with large batches (blocks on worker threads) and two
    threads predicting with a third, already fitted model, all at once, give
    the bits of the same calls made one after the other; the calling
    thread's count and the default of later threads are as before."""
    rng = np.random.default_rng(0)
    n = 2 * SMALL_BATCH
    X = rng.normal(size=(n, 2))
    y = X[:, 0] + np.sin(2 * X[:, 1]) + 0.3 * rng.normal(size=n)
    params = dict(
        n_components=2,
        hidden_layer_sizes=(16,),
        batch_size=SMALL_BATCH,
        max_iter=3,
        early_stopping=False,
    )
    jobs = [(X.astype(np.float32), 0), (X, 1)]

    def fit(job):
        Xj, seed = job
        model = MDNRegressor(random_state=seed, **params).fit(Xj, y)
        return {k: v.clone() for k, v in model.network_.state_dict().items()}

    fitted = MDNRegressor(random_state=2, **params).fit(X[:500], y[:500])
    Xp = rng.normal(size=(40_000, 2))  # several inference chunks

    def predict(_):
        return (
            fitted.predict(Xp),
            fitted.score(X, y),
            fitted.sample(Xp, 2, random_state=0),
            fitted.predict_dist(X[:1]).logpdf(y[:1]),
        )

    want = [fit(job) for job in jobs] + [predict(None) for _ in range(2)]
    got = [None] * 4
    failed = []

    def run(i):
        try:
            got[i] = fit(jobs[i]) if i < 2 else predict(None)
        except BaseException as error:  # reported below, with its type
            failed.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failed
    for fitted_state, reference in zip(got[:2], want[:2], strict=True):
        assert all(torch.equal(fitted_state[k], reference[k]) for k in reference)
    for result, reference in zip(got[2:], want[2:], strict=True):
        assert all(np.array_equal(a, b) for a, b in zip(result, reference, strict=True))
    assert (torch.get_num_threads(), threads_of_a_new_thread()) == (2, 2)
