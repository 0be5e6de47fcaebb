"""Thread choice: the static rule and the timing-based chooser."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import skmdn._training as training
from skmdn import MDNRegressor
from skmdn._utils import SMALL_BATCH, SPLIT_BATCH, ThreadChooser

from .conftest import exits_when_forked, needs_fork, threads_of_a_new_thread


def _drive(chooser: ThreadChooser, cost, n_blocks: int) -> list[int]:
    """Run blocks whose seconds per row are ``cost(block, threads)``."""
    used = []
    for block in range(n_blocks):
        threads = chooser.choose()
        used.append(threads)
        chooser.record(threads, cost(block, threads) * SMALL_BATCH, SMALL_BATCH)
    return used


def test_chooser_follows_the_faster_choice_and_reprobes(two_threads):
    chooser = ThreadChooser(None, SMALL_BATCH, reprobe=4)
    assert chooser.preferred() == 2  # nothing timed yet: the budget

    def cost(block, threads):  # quiet, then another process takes a core
        if block < 40:
            return 1.0 if threads == 2 else 1.8
        return 60.0 if threads == 2 else 2.0

    used = _drive(chooser, cost, 120)
    assert used[:3] == [2, 1, 2]  # both timed, the budget twice (warm-up)
    # two threads lose once their last `window` blocks are all slow
    switched = 40 + ThreadChooser.window
    quiet, busy = used[3:40], used[switched:]
    assert quiet.count(2) > 0.85 * len(quiet)
    assert used[40:switched] == [2] * ThreadChooser.window
    assert busy.count(1) > 0.9 * len(busy)
    assert chooser.preferred() == 1  # e.g. for the validation pass
    probes = [i for i in range(switched, 120) if used[i] == 2]
    assert len(probes) <= 4  # re-probes back off (4, 8, 16, 32 blocks apart)
    assert np.all(np.diff(probes) > 1)


def test_one_slow_block_does_not_hand_over_the_choice(two_threads):
    """A moment's noise slows one block of the faster count: judged by its
    last block alone it would lose to the slower count until the next probe;
    judged by the best of its last ``window`` blocks it keeps the choice."""
    chooser = ThreadChooser(None, SMALL_BATCH, reprobe=8)

    def cost(block, threads):
        if threads == 1:
            return 1.6
        return 5.0 if block in (10, 20, 21) else 1.0  # single and paired hiccups

    used = _drive(chooser, cost, 40)
    probes = [i for i in range(3, 40) if used[i] == 1]
    assert probes == [11, 27]  # only the scheduled re-probes (8, then 16 apart)
    # a count that stays slow loses after `window` blocks
    chooser = ThreadChooser(None, SMALL_BATCH, reprobe=100)
    used = _drive(chooser, lambda b, t: 1.6 if t == 1 else (1.0 if b < 10 else 3.0), 20)
    assert used[3:] == [2] * (7 + ThreadChooser.window) + [1] * (
        10 - ThreadChooser.window
    )


@pytest.mark.parametrize(
    ("n_threads", "rows", "device", "fixed"),
    [(3, SMALL_BATCH, None, 3), (None, SPLIT_BATCH - 1, None, 1)],
)
def test_chooser_is_fixed_when_there_is_nothing_to_choose(
    two_threads, n_threads, rows, device, fixed
):
    chooser = ThreadChooser(n_threads, rows, device)
    assert chooser.fixed == fixed
    assert {chooser.choose() for _ in range(20)} == {fixed}


def test_chooser_times_both_counts_from_the_batch_that_is_split(two_threads):
    """From SPLIT_BATCH rows a step runs as two blocks (BlockedBackprop), so
    one worker and two are both worth timing."""
    chooser = ThreadChooser(None, SPLIT_BATCH)
    assert chooser.fixed is None
    assert [chooser.choose() for _ in range(3)] == [2, 1, 2]


def test_chooser_is_fixed_with_a_budget_of_one_or_on_an_accelerator(
    two_threads, monkeypatch
):
    assert ThreadChooser(None, SMALL_BATCH, torch.device("cuda")).fixed == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert ThreadChooser(None, SMALL_BATCH).fixed == 1


# short fits on purpose: their ConvergenceWarning is not what is tested
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_large_batch_training_chooses_threads_per_step(two_threads, monkeypatch):
    """Steps are blocks on worker threads: the chooser picks the number of
    workers, and torch runs one thread in each."""
    seen = []
    real = training.step_loss

    def recording(*args):
        seen.append((args[-1], torch.get_num_threads()))
        return real(*args)

    monkeypatch.setattr(training, "step_loss", recording)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3 * SMALL_BATCH, 2)).astype(np.float32)
    y = X[:, 0] + 0.1 * rng.normal(size=len(X))
    MDNRegressor(
        batch_size=SMALL_BATCH, max_iter=2, early_stopping=False, random_state=0
    ).fit(X, y)
    assert seen[:3] == [(2, 1), (1, 1), (2, 1)]  # the probes (workers, torch)
    assert {torch_count for _, torch_count in seen} == {1}
    assert torch.get_num_threads() == 2  # restored


# short fits on purpose: their ConvergenceWarning is not what is tested
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    ("dtype", "params"),
    [
        (np.float32, {}),
        (np.float64, {}),
        (np.float32, {"noise_type": "full"}),  # trained by autograd
        (np.float64, {"activation": "gelu"}),  # trained by autograd
    ],
)
def test_large_batch_fits_do_not_depend_on_the_thread_count(two_threads, dtype, params):
    """The same random_state gives the same bits with one thread, two, or the
    timed choice between them: a batch's blocks are fixed by its size and each
    runs on one torch thread. (With two torch threads per kernel, fits on ten
    features differed from one-thread fits by about 5e-8 in float32.)"""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3 * SMALL_BATCH, 10)).astype(dtype)
    y = np.sin(X[:, :2]) + 0.1 * rng.normal(size=(len(X), 2))
    preds = []
    for n_threads in (1, 2, None):
        model = MDNRegressor(
            batch_size=2 * SMALL_BATCH,
            max_iter=3,
            random_state=0,
            n_threads=n_threads,
            **params,
        ).fit(X, y)
        assert model.validation_scores_  # early stopping: validation too
        preds.append(
            (model.predict(X[:500]), model.loss_curve_, model.validation_scores_)
        )
    for pred, curve, scores in preds[1:]:
        np.testing.assert_array_equal(pred, preds[0][0])
        assert curve == preds[0][1]
        assert scores == preds[0][2]


def test_a_smaller_last_block_is_neither_timed_nor_counted(two_threads):
    """An epoch's remainder batch costs more per row at any thread count; were
    it recorded, it would make the count it ran with lose against the other."""
    chooser = ThreadChooser(None, SMALL_BATCH)
    for threads in (2, 1, 2):  # the probes: two threads are faster per row
        assert chooser.choose() == threads
        chooser.record(
            threads, (1.0 if threads == 2 else 1.5) * SMALL_BATCH, SMALL_BATCH
        )
    count = chooser._count
    with chooser.block(SMALL_BATCH // 5) as n:
        assert (n, torch.get_num_threads()) == (2, 1)
    assert chooser._count == count  # not counted as a block
    timed = {k: list(v) for k, v in chooser._seconds_per_row.items()}
    assert timed == {2: [1.0, 1.0], 1: [1.5]}  # and not timed
    assert chooser.choose() == 2


# short fits on purpose: their ConvergenceWarning is not what is tested
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_large_batch_fits_with_fixed_threads_are_bit_identical(two_threads):
    """The timed thread choice may change rounding; a fixed count does not."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3 * SMALL_BATCH, 3))
    y = X[:, 0] + 0.1 * rng.normal(size=len(X))
    preds = [
        MDNRegressor(batch_size=SMALL_BATCH, max_iter=3, n_threads=2, random_state=0)
        .fit(X, y)
        .predict(X[:500])
        for _ in range(3)
    ]
    for p in preds[1:]:
        np.testing.assert_array_equal(p, preds[0])


def test_a_block_times_the_workers_with_torch_at_one_thread(two_threads):
    chooser = ThreadChooser(None, SMALL_BATCH)
    for expected in (2, 1, 2):  # the probes
        with chooser.block(SMALL_BATCH) as n:
            assert (n, torch.get_num_threads()) == (expected, 1)
    assert set(chooser._seconds_per_row) == {1, 2}  # both timed
    with chooser.block(SMALL_BATCH // 3) as n:  # not timed
        assert (n, torch.get_num_threads()) == (chooser.preferred(), 1)
    fixed = ThreadChooser(2, SMALL_BATCH)
    with fixed.block(SMALL_BATCH) as n:
        assert (n, torch.get_num_threads()) == (2, 1)
    assert torch.get_num_threads() == 2  # restored


def test_validation_likelihood_does_not_depend_on_the_workers(two_threads):
    """Chunks on worker threads, summed in chunk order: the same float on one
    or three workers, equal to the mixture's log-likelihood on all rows."""
    from skmdn._mixture import mixture_log_prob
    from skmdn._network import MDNNetwork
    from skmdn._training import mean_log_likelihood

    net = MDNNetwork(3, 2, 4, (8,), "tanh", "diagonal", 1e-3)
    net.reset_parameters(torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    X, Y = torch.randn(103, 3, generator=g), torch.randn(103, 2, generator=g)
    w = torch.rand(103, generator=g)
    got = [mean_log_likelihood(net, X, Y, w, chunk=10, workers=k) for k in (1, 3)]
    assert got[0] == got[1]
    with torch.no_grad():
        want = float((w * mixture_log_prob(net(X), Y)).sum() / w.sum())
    assert got[0] == pytest.approx(want, rel=1e-6)


def test_training_keeps_torch_on_one_thread_on_a_cpu(two_threads):
    """Every step runs in blocks on worker threads there (the hand-written
    step or autograd's), each worker with one torch thread."""
    from skmdn._training import training_torch_threads

    cpu = torch.device("cpu")
    assert training_torch_threads(cpu, None, 2 * SMALL_BATCH) == 1
    assert training_torch_threads(cpu, 2, 2 * SMALL_BATCH) == 1
    assert training_torch_threads(torch.device("cuda"), None, 8192) == 2
    assert training_torch_threads(torch.device("cuda"), 3, 256) == 3


def test_blocked_work_leaves_the_thread_count_of_later_threads_alone(two_threads):
    """A worker's torch.set_num_threads(1) also sets the count that threads
    started later get; a mixture's blocked logpdf and sample (no
    torch_threads around them) must not leave it at 1."""
    from skmdn import GaussianMixture

    assert threads_of_a_new_thread() == 2
    rng = np.random.default_rng(0)
    n = 40_000  # several blocks
    dist = GaussianMixture(
        np.log(np.full((n, 2), 0.5)),
        rng.normal(size=(n, 2, 1)),
        scales=np.ones((n, 2, 1)),
        univariate=True,
        n_threads=2,
    )
    dist.logpdf(np.zeros(n))
    assert threads_of_a_new_thread() == 2
    dist.sample(2, random_state=0)
    assert (threads_of_a_new_thread(), torch.get_num_threads()) == (2, 2)


def test_tensor_view_keeps_filters_set_by_other_threads(monkeypatch):
    """``warnings.catch_warnings`` saves the process-wide filter list and puts
    it back on exit, so a filter another thread adds meanwhile is dropped
    (and two overlapping uses can leave skmdn's own filter behind).
    tensor_view runs on inference worker threads for every chunk; here
    another thread adds a filter while torch.from_numpy runs, for a writable
    array and for a read-only one after torch's once-per-process warning."""
    import threading
    import warnings

    from skmdn._utils import tensor_view

    read_only = np.ones(3)
    read_only.flags.writeable = False
    tensor_view(read_only)  # torch's read-only warning is spent from here on
    real = torch.from_numpy

    def other_thread_adds_a_filter(a):
        worker = threading.Thread(
            target=warnings.filterwarnings, args=("error", "added meanwhile")
        )
        worker.start()
        worker.join()
        return real(a)

    monkeypatch.setattr(torch, "from_numpy", other_thread_adds_a_filter)
    for a in (np.ones(3), read_only):
        with warnings.catch_warnings():
            tensor_view(a)
            assert any(
                f[1] is not None and f[1].pattern == "added meanwhile"
                for f in warnings.filters
            )


def test_tensor_view_silences_read_only_warnings_under_warn_always():
    """torch.set_warn_always(True) makes torch warn about every read-only
    array, not once per process: tensor_view still keeps it from users."""
    import warnings

    from skmdn._utils import tensor_view

    read_only = np.ones(3)
    read_only.flags.writeable = False
    tensor_view(read_only)
    before = torch.is_warn_always_enabled()
    torch.set_warn_always(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for _ in range(2):
                np.testing.assert_array_equal(tensor_view(read_only).numpy(), 1.0)
    finally:
        torch.set_warn_always(before)


@needs_fork
def test_a_fork_while_another_thread_holds_the_read_only_lock_does_not_hang(
    monkeypatch,
):
    """A process forked while a thread of the parent holds tensor_view's lock
    copies it held; the child's first read-only array must not wait for it."""
    from skmdn import _utils

    monkeypatch.setattr(_utils, "_read_only_warned", __import__("threading").Event())
    read_only = np.ones(4)
    read_only.flags.writeable = False
    with _utils._read_only_lock:  # held by this thread across the fork
        exited = exits_when_forked(_utils.tensor_view, read_only)
    assert exited
