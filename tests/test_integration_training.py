"""Progress reporting (verbose) and interrupting a fit with Ctrl-C."""

import re
import sys

import numpy as np
import pytest

from skmdn import MDNRegressor
from skmdn import _training as training
from tests.conftest import make_inverse_sine

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _model(**kw):
    params = dict(
        n_components=3,
        hidden_layer_sizes=(8,),
        batch_size=50,
        max_iter=4,
        random_state=0,
    )
    params.update(kw)
    return MDNRegressor(**params)


@pytest.fixture
def data():
    return make_inverse_sine(200, seed=0)


def test_verbose_0_is_silent(data, capsys):
    _model(verbose=0).fit(*data)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_verbose_2_prints_a_line_per_epoch(data, capsys):
    model = _model(verbose=2, early_stopping=True).fit(*data)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == model.n_iter_ == 4
    pattern = re.compile(r"Epoch (\d+), loss = (\S+), validation NLL = (\S+)")
    for i, line in enumerate(lines):
        epoch, loss, nll = pattern.fullmatch(line).groups()
        assert int(epoch) == i + 1
        assert float(loss) == pytest.approx(model.loss_curve_[i], abs=1e-6)
        assert float(nll) == pytest.approx(-model.validation_scores_[i], abs=1e-6)


def test_verbose_1_shows_a_tqdm_bar_with_loss_and_validation_nll(data, capsys):
    pytest.importorskip("tqdm", reason="tqdm is not installed")
    model = _model(verbose=1, early_stopping=True).fit(*data)
    out = capsys.readouterr()
    assert out.out == ""
    final = out.err.replace("\r", "\n").strip().splitlines()[-1]
    assert "MDNRegressor" in final and "4/4" in final
    loss = float(re.search(r"loss=(\S+?)[,\]]", final).group(1))
    nll = float(re.search(r"val_nll=(\S+?)[,\]]", final).group(1))
    assert loss == pytest.approx(model.loss_curve_[-1], abs=1e-4)
    assert nll == pytest.approx(-model.validation_scores_[-1], abs=1e-4)


def test_verbose_1_without_tqdm_prints_lines_and_a_note(data, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import now fails
    monkeypatch.setattr("skmdn._progress._noted", False)
    model = _model(verbose=1).fit(*data)
    lines = capsys.readouterr().out.strip().splitlines()
    # skmdn is not on PyPI: name the package itself, not skmdn's extra
    assert "(pip install tqdm)" in lines[0] and "skmdn[" not in lines[0]
    assert len(lines) == 1 + model.n_iter_
    assert lines[1].startswith("Epoch 1, loss = ")
    # once per process: a partial_fit loop prints only its epochs' lines
    for _ in range(3):
        model.partial_fit(*data)
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(",")[0] for line in lines] == [
        f"Epoch {model.n_iter_ - 2 + i}" for i in range(3)
    ]


def _interrupt_on_training_call(monkeypatch, call):
    """Raise KeyboardInterrupt in the ``call``-th training step (validation
    passes do not call ``step_loss``)."""
    original = training.step_loss
    count = {"n": 0}

    def step_loss(*args):
        count["n"] += 1
        if count["n"] == call:
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(training, "step_loss", step_loss)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_keyboard_interrupt_keeps_a_usable_model(data, monkeypatch, early_stopping):
    X, y = data
    # The reference: the same model trained for exactly 3 epochs.
    reference = _model(max_iter=3, early_stopping=early_stopping).fit(X, y)
    n_batches = int(np.ceil(len(X) * (0.9 if early_stopping else 1.0) / 50))
    # Interrupt in the middle of epoch 4 (after 3 full epochs + 2 batches).
    _interrupt_on_training_call(monkeypatch, 3 * n_batches + 2)
    model = _model(max_iter=50, early_stopping=early_stopping)
    with pytest.warns(UserWarning, match="interrupted by the user after 3 epochs"):
        model.fit(X, y)
    assert model.n_iter_ == 3
    pred = model.predict(X)
    assert np.isfinite(pred).all()
    # The half-trained 4th epoch is discarded: the model is the 3-epoch model
    # (with early stopping, its best epoch among the three).
    np.testing.assert_allclose(pred, reference.predict(X), rtol=1e-12)
    assert model.score(X, y) == pytest.approx(reference.score(X, y), rel=1e-12)
    if early_stopping:
        assert model.best_validation_score_ == reference.best_validation_score_


@pytest.mark.parametrize("helper", [False, True], ids=["pool worker", "helper"])
def test_an_interrupt_in_a_worker_thread_keeps_a_usable_model(
    two_threads, monkeypatch, helper
):
    """Large batches run in blocks on worker threads: an interrupt raised in a
    worker's block reaches the fit, which keeps the weights of the last whole
    epoch, as for an interrupt on the main thread. With the compiled block's
    helper (which runs no Python), the interrupt comes in the calling
    thread's block while the helper's runs: the step waits for it, and the
    fit keeps the same epochs."""
    import itertools
    import threading

    import skmdn._backprop as backprop
    from skmdn import _fused

    if helper and not _fused.helper_available():
        pytest.skip("the extension has no block helper here")
    monkeypatch.setattr(_fused, "HELPER", helper)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12288, 3)).astype(np.float32)
    y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=len(X))
    params = dict(batch_size=8192, early_stopping=False, n_threads=2, random_state=0)
    original = backprop.ManualBackprop._step
    blocks = itertools.count(1)  # on any thread: 2 batches of 2 blocks an epoch
    # (_step: every block, whether it gathered its own rows or was given them)
    stop, threads = {}, set()

    def call(self, *args, **kwargs):
        i = next(blocks)
        threads.add(threading.current_thread())
        # Without the helper the calling thread takes blocks too, so which
        # ones run on the worker depends on timing: interrupt the first
        # worker block from epoch 4 on. With it, every block's call is on
        # the calling thread, the second of a step first (posted): interrupt
        # the first block of a step from epoch 4 on.
        if helper:
            interrupt = i > 12 and i % 2 == 0
        else:
            interrupt = i > 12 and threading.current_thread() is not main
        if interrupt and not stop:
            stop["after"] = (i - 1) // 4  # whole epochs before this block
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    main = threading.main_thread()
    monkeypatch.setattr(backprop.ManualBackprop, "_step", call)
    model = MDNRegressor(max_iter=50, **params)
    with pytest.warns(UserWarning, match="interrupted by the user after") as record:
        model.fit(X, y)
    epochs = stop["after"]
    assert any(f"after {epochs} epochs;" in str(w.message) for w in record)
    assert model.n_iter_ == epochs
    assert (threads == {main}) == helper
    reference = MDNRegressor(max_iter=epochs, **params).fit(X, y)
    np.testing.assert_array_equal(model.predict(X[:500]), reference.predict(X[:500]))


def test_an_error_inside_training_closes_the_progress_bar(data, monkeypatch):
    """Whatever ends training, its bar is closed: an open one stays registered
    with tqdm (and on screen) while the traceback keeps it alive, and pushes
    the next fit's bar down a line."""
    tqdm = pytest.importorskip("tqdm", reason="tqdm is not installed")

    def step_loss(*args):
        raise RuntimeError("boom")

    before = len(tqdm.tqdm._instances)
    monkeypatch.setattr(training, "step_loss", step_loss)
    with pytest.raises(RuntimeError, match="boom") as caught:
        _model(verbose=1).fit(*data)
    assert caught.value is not None  # the traceback is still held here
    assert len(tqdm.tqdm._instances) == before


@pytest.mark.parametrize("verbose", [1, 2])
def test_an_interrupt_while_reporting_an_epoch_keeps_it(data, monkeypatch, verbose):
    """Ctrl-C while an epoch's progress is written (printing is where the main
    thread waits between steps) stops training after that epoch, as anywhere
    else, instead of discarding the whole fit."""
    from skmdn._progress import ProgressReporter

    X, y = data
    reference = _model(max_iter=3, early_stopping=True).fit(X, y)
    original = ProgressReporter.update

    def update(self, epoch, *args, **kwargs):
        original(self, epoch, *args, **kwargs)
        if epoch == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(ProgressReporter, "update", update)
    model = _model(max_iter=50, early_stopping=True, verbose=verbose)
    with pytest.warns(UserWarning, match="interrupted by the user after 3 epochs"):
        model.fit(X, y)
    assert model.n_iter_ == len(model.loss_curve_) == 3
    assert model.validation_scores_ == reference.validation_scores_
    np.testing.assert_array_equal(model.predict(X), reference.predict(X))
