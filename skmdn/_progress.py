"""Per-epoch progress reporting for the training loop (the ``verbose`` parameter).

``verbose=0`` is silent; ``verbose=1`` shows a :mod:`tqdm` progress bar over
the epochs with the training loss and, with early stopping, the validation
negative log-likelihood (a line per epoch when tqdm is not installed, after a
note printed once per process); ``verbose>=2`` prints one line per epoch, for logs.
Both end with a line that says why training stopped early, when it did.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["ProgressReporter"]

_TQDM_MISSING_NOTE = (
    "verbose=1 shows a progress bar when tqdm is installed (pip install "
    "tqdm); printing a line per epoch instead."
)
# Printed once per process: a partial_fit loop over many chunks would
# otherwise repeat it before every epoch's line.
_noted = False


class ProgressReporter:
    """Reports each epoch of one call to ``train``; :meth:`close` ends it.

    Parameters
    ----------
    verbose : int
        0 silent, 1 a progress bar, 2 or more a printed line per epoch.
    max_iter : int
        Maximum number of epochs of this call (the length of the bar).

    Examples
    --------
    >>> reporter = ProgressReporter(verbose=2, max_iter=3)
    >>> reporter.update(1, loss=0.5, validation_nll=0.75)
    Epoch 1, loss = 0.500000, validation NLL = 0.750000
    >>> reporter.close()
    """

    def __init__(self, verbose: int, max_iter: int) -> None:
        self.verbose = int(verbose)
        self._bar: Any = None
        if self.verbose == 1:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                global _noted
                if not _noted:
                    print(_TQDM_MISSING_NOTE)
                    _noted = True
            else:
                self._bar = tqdm(
                    total=max_iter,
                    desc="MDNRegressor",
                    unit="epoch",
                    file=sys.stderr,
                    dynamic_ncols=True,
                )

    def update(
        self, epoch: int, loss: float, validation_nll: float | None = None
    ) -> None:
        """Report epoch ``epoch`` (1-based, counted over the model's life)."""
        if self.verbose <= 0:
            return
        if self._bar is not None:
            postfix = {"loss": f"{loss:.4f}"}
            if validation_nll is not None:
                postfix["val_nll"] = f"{validation_nll:.4f}"
            self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(1)
            return
        line = f"Epoch {epoch}, loss = {loss:.6f}"
        if validation_nll is not None:
            line += f", validation NLL = {validation_nll:.6f}"
        print(line, flush=True)

    def note(self, message: str) -> None:
        """Print a closing line (why training stopped) unless silent; the
        bar, if any, is closed first."""
        if self.verbose <= 0:
            return
        self.close()
        print(message, flush=True)

    def close(self) -> None:
        """Close the progress bar (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
