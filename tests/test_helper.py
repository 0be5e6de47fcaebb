"""The block helper (``skmdn._fused.BlockHelper``, ``helper_*`` in
``_cmixture.c``): a block posted to it gives the same loss and gradients as
the same block run on the calling thread, whether its loop runs or not;
its refusals; its loop leaves when idle or stopped; and the blocked steps
that use it give the same bits as without it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import torch

from skmdn import _fused
from skmdn._backprop import BlockedBackprop, ManualBackprop
from skmdn._network import MDNNetwork
from skmdn._training import FlatAdam

from .test_block import REQUIRED

needs_helper = pytest.mark.skipif(
    not REQUIRED
    and (
        _fused._cmixture is None
        or not _fused.blas_available()
        or not hasattr(_fused._cmixture, "helper_new")
    ),
    reason="the block helper needs the extension, torch's MKL and GCC or Clang",
)


@pytest.fixture(autouse=True)
def _helper_on(monkeypatch):
    monkeypatch.setattr(_fused, "ENABLED", True)
    monkeypatch.setattr(_fused, "BLOCKS", True)
    monkeypatch.setattr(_fused, "HELPER", True)


def test_the_helper_is_built_where_required():
    if not REQUIRED:
        pytest.skip("SKMDN_REQUIRE_CMIXTURE is not set on x86-64 Linux")
    assert _fused.helper_available()


def _case(noise_type="diagonal", dtype=torch.float32, n=300):
    """A network with its optimiser, a block step and packed rows."""
    net = MDNNetwork(3, 2, 3, (8, 5), "tanh", noise_type, 1e-3, (0.5, 0.5))
    net.reset_parameters(torch.Generator().manual_seed(0))
    net = net.to(dtype)
    opt = FlatAdam(net, 1e-3, 0.0)
    g = torch.Generator().manual_seed(1)
    packed = torch.cat(
        [torch.randn(n, 5, generator=g, dtype=dtype), torch.ones(n, 1, dtype=dtype)],
        dim=1,
    )
    return net, opt, ManualBackprop(net), packed


class _Starts:
    """A helper's ``start``: counts the loops started, on a pool's thread
    (or none, ``run=False``: every block is then run by ``wait``)."""

    def __init__(self, run: bool = True) -> None:
        self.run, self.count, self.futures = run, 0, []
        self.pool = ThreadPoolExecutor(1)

    def __call__(self, loop) -> None:
        self.count += 1
        if self.run:
            self.futures.append(self.pool.submit(loop))


@contextmanager
def _helper(run: bool = True, idle: float = 0.002):
    """A BlockHelper and its :class:`_Starts`, stopped and shut down after."""
    starts = _Starts(run)
    helper = _fused.BlockHelper(starts, idle=idle)
    try:
        yield helper, starts
    finally:
        helper.stop()
        starts.pool.shutdown(wait=True)


def _post(step, packed, helper, index=None):
    """Post the block of all rows of ``packed`` (through ``index``)."""
    n = len(packed) if index is None else len(index)
    assert step.rows(packed, index, slice(0, n), 3, n, None, 1.0, helper) is None


@needs_helper
@pytest.mark.parametrize("run", [True, False], ids=["loop", "no loop"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("noise_type", ["diagonal", "fixed", "full"])
def test_a_posted_block_is_the_block_run_here(run, dtype, noise_type):
    """Loss and gradients to the bit, the rows gathered in the block or
    given (the targets then a temporary, which the helper keeps alive), by
    the loop or, where none runs, by wait itself."""
    _, opt, step, packed = _case(noise_type, dtype)
    index = torch.randperm(300, generator=torch.Generator().manual_seed(2))[:200]
    with _helper(run) as (helper, starts):
        for gathered in (True, False):
            rows = packed[index]
            if gathered:
                want = step.rows(packed, index, slice(0, 200), 3, 200)
            else:
                want = step(rows[:, :3], rows[:, 3:5], rows[:, 5] / 200)
            want_grad = opt.grad.clone()
            opt.grad.fill_(float("nan"))
            if gathered:
                _post(step, packed, helper, index)
            else:
                y, w = rows[:, 3:5].clone(), rows[:, 5] / 200
                assert step(rows[:, :3], y, w, None, 1.0, helper) is None
                del y, w  # the block's own references are the helper's now
            got = helper.wait()
            assert got.dtype == dtype
            assert torch.equal(got, want)
            assert torch.equal(opt.grad, want_grad)
    assert starts.count >= 1  # no loop was running at the first post


@needs_helper
def test_a_running_loop_takes_the_next_block_and_leaves_when_idle():
    """With a loop waiting (a long idle window), every post finds it: one
    start for 20 blocks; stop lets it leave at once, long before its window
    ends; with a window of 1 ms the loop leaves on its own, and the next
    post starts it again."""
    _, _, step, packed = _case()
    want = step.rows(packed, None, slice(0, 300), 3, 300)
    with _helper(idle=60.0) as (helper, starts):
        for i in range(20):
            _post(step, packed, helper)
            assert torch.equal(helper.wait(), want)
            while i == 0 and not starts.futures[0].running():
                time.sleep(1e-3)  # the first wait may run the block itself
            time.sleep(0.1 if i == 0 else 0.0)  # the loop is in C, waiting
        assert starts.count == 1
        began = time.perf_counter()
        helper.stop()
        starts.futures[-1].result(timeout=30)
        assert time.perf_counter() - began < 30
    with _helper(idle=0.001) as (helper, starts):
        _post(step, packed, helper)
        assert torch.equal(helper.wait(), want)
        starts.futures[-1].result(timeout=30)  # it left on its own
        _post(step, packed, helper)
        assert torch.equal(helper.wait(), want)
        assert starts.count == 2


@needs_helper
def test_a_post_after_stop_starts_a_loop_again():
    """stop with a loop waiting lets it leave; stop with none leaves the
    helper stopped; either way the next post starts a loop, which takes
    the block."""
    _, _, step, packed = _case()
    want = step.rows(packed, None, slice(0, 300), 3, 300)
    with _helper(idle=60.0) as (helper, starts):
        for _ in range(3):
            before = starts.count
            _post(step, packed, helper)
            assert torch.equal(helper.wait(), want)
            helper.stop()
            starts.futures[-1].result(timeout=30)  # the loop left
            helper.stop()  # none running: stays stopped
            assert starts.count == before + 1


@needs_helper
def test_the_helper_refuses_what_it_cannot_do():
    """A wait with nothing posted, a second post before the wait, a block
    whose arguments it cannot read: errors, and the helper still works."""
    c = _fused._cmixture
    _, _, step, packed = _case()
    with _helper(run=False) as (helper, _):
        with pytest.raises(RuntimeError, match="no block was posted"):
            helper.wait()
        with pytest.raises(RuntimeError, match="no block was posted"):
            c.helper_wait(helper._capsule)
        _post(step, packed, helper)
        with pytest.raises(RuntimeError, match="already posted"):
            c.helper_post(helper._capsule, *helper_args(step, packed))
        want = helper.wait()
        with pytest.raises(TypeError):
            helper.post(("not", "a", "block"), torch.float32, None)
        with pytest.raises(RuntimeError, match="no block was posted"):
            helper.wait()  # the refused post left nothing behind
        with pytest.raises(TypeError, match="a helper"):
            c.helper_wait()
        _post(step, packed, helper)
        assert torch.equal(helper.wait(), want)


def helper_args(step: ManualBackprop, packed: torch.Tensor) -> tuple:
    """The mlp_block arguments ``step.rows`` posts for all rows of
    ``packed``, caught from a helper that records them."""
    seen = []

    class Recorder:
        def post(self, args, dtype, keep):
            seen.append(args)

    _post(step, packed, Recorder())
    return seen[0]


@needs_helper
def test_a_bad_row_in_a_posted_block_is_raised_by_the_wait():
    _, opt, step, packed = _case()
    index = torch.arange(300)
    index[7] = 1000
    with _helper() as (helper, _):
        opt.grad.fill_(123.0)
        _post(step, packed, helper, index)
        with pytest.raises(IndexError, match="row 7 of the block is outside"):
            helper.wait()
        assert torch.all(opt.grad == 123.0)
        want = step.rows(packed, None, slice(0, 300), 3, 300)
        _post(step, packed, helper)
        assert torch.equal(helper.wait(), want)


@needs_helper
def test_a_block_posted_and_abandoned_is_finished_before_the_next():
    """An interrupt between a post and its wait leaves a block in flight:
    the next post, or stop, finishes it first (its memory stays valid)."""
    _, opt, step, packed = _case()
    with _helper() as (helper, _):
        want = step.rows(packed, None, slice(0, 300), 3, 300)
        want_grad = opt.grad.clone()
        _post(step, packed, helper)
        _post(step, packed, helper)  # again
        assert torch.equal(helper.wait(), want)
        assert torch.equal(opt.grad, want_grad)
        _post(step, packed, helper)
        helper.stop()  # finishes it
        assert helper._posted is None
        assert torch.equal(opt.grad, want_grad)
        bad = torch.arange(300)
        bad[5] = -3
        _post(step, packed, helper, bad)
        _post(step, packed, helper)
        assert torch.equal(helper.wait(), want)  # the bad block's error dropped
        assert torch.equal(opt.grad, want_grad)


@needs_helper
@pytest.mark.parametrize("blocks", [2, 4])
@pytest.mark.parametrize("gathered", [True, False])
@pytest.mark.parametrize("noise_type", ["isotropic", "fixed"])
def test_blocked_steps_through_the_helper_give_the_same_bits(
    monkeypatch, blocks, gathered, noise_type
):
    """Two workers with the helper against two pool workers without it and
    one worker: the same loss and gradients; with the helper every block's
    step is called on the calling thread (the odd ones posted)."""
    net, opt, _, packed = _case(noise_type, n=400)
    index = torch.randperm(400, generator=torch.Generator().manual_seed(4))[:256]
    rows = packed[index]
    threads = set()
    original = ManualBackprop._step

    def step_on(self, *args, **kwargs):
        threads.add(threading.current_thread())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ManualBackprop, "_step", step_on)
    results = {}
    for name, workers, helper in [
        ("one", 1, True),
        ("pool", 2, False),
        ("helper", 2, True),
    ]:
        monkeypatch.setattr(_fused, "HELPER", helper)
        blocked = BlockedBackprop(net, opt.grad, 256 // blocks)
        assert len(blocked.blocks(256)) == blocks
        threads.clear()
        try:
            if gathered:
                loss = blocked.unit_rows(packed, index, 3, workers)
            else:
                loss = blocked(rows[:, :3], rows[:, 3:5], rows[:, 5] / 256, workers)
        finally:
            blocked.close()
        results[name] = (loss, opt.grad.clone())
        if name == "helper":
            assert threads == {threading.current_thread()}
    for name in ("pool", "helper"):
        assert torch.equal(results[name][0], results["one"][0])
        assert torch.equal(results[name][1], results["one"][1])


@needs_helper
def test_the_pool_s_thread_is_freed_for_other_blocks(monkeypatch):
    """After steps through the helper, whose loop would wait a minute for
    the next block, a step on three workers (the pool's threads) runs at
    once, the loop stopped first, and gives the same bits."""
    original = _fused.BlockHelper.__init__

    def patient(self, start, idle=0.002):
        original(self, start, idle=60.0)

    monkeypatch.setattr(_fused.BlockHelper, "__init__", patient)
    net, opt, _, packed = _case(n=400)
    blocked = BlockedBackprop(net, opt.grad, 64)
    try:
        want = blocked.unit_rows(packed, None, 3, 1)
        for _ in range(3):
            assert torch.equal(blocked.unit_rows(packed, None, 3, 2), want)
        began = time.perf_counter()
        assert torch.equal(blocked.unit_rows(packed, None, 3, 3), want)
        assert time.perf_counter() - began < 1.0
    finally:
        blocked.close()


@needs_helper
def test_a_second_block_that_is_not_compiled_runs_on_the_calling_thread():
    """A block whose step is not a compiled ManualBackprop block (here one
    wrapped so that it cannot take the helper) runs where it is called, and
    the step keeps its bits."""
    net, opt, _, packed = _case(n=400)
    blocked = BlockedBackprop(net, opt.grad, 64)
    try:
        want = blocked.unit_rows(packed, None, 3, 1)
        manual, buffer, targets = blocked._slots[3]

        class Wrapped:  # BlockStep's interface, not a ManualBackprop
            linears = manual.linears

            def __call__(self, *args):
                return manual(*args)

        blocked._slots[3] = (Wrapped(), buffer, targets)
        assert torch.equal(blocked.unit_rows(packed, None, 3, 2), want)
    finally:
        blocked.close()
