"""pytest set-up shared by the tests and the doctests (``--doctest-modules``
in pyproject.toml runs the Examples of every docstring in skmdn/).

The examples of :mod:`skmdn.plotting` draw with matplotlib, an optional
dependency (``skmdn[plot]``): they draw on the Agg backend, and are skipped
where matplotlib cannot be imported, as tests/test_integration_plotting.py
is. The examples fit tiny models for a few epochs, so their
ConvergenceWarning is expected and not reported.
"""

import os
import sys
from pathlib import Path

import pytest

# Read by matplotlib when it is first imported: no window, no display needed.
os.environ.setdefault("MPLBACKEND", "Agg")

PACKAGE = Path(__file__).parent / "skmdn"
PLOTTING = PACKAGE / "plotting.py"


def _matplotlib_missing() -> str | None:
    """Why matplotlib cannot be imported, or None if it can."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        return f"matplotlib is not installed ({exc})"
    return None


def pytest_collection_modifyitems(config, items):
    doctests = [item for item in items if item.path.parent == PACKAGE]
    quiet = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
    for item in doctests:
        item.add_marker(quiet)
    plotting = [item for item in doctests if item.path == PLOTTING]
    reason = _matplotlib_missing() if plotting else None
    if reason:
        for item in plotting:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_runtest_teardown(item):
    if item.path == PLOTTING and "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
