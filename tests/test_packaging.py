"""The distributions hold what they should: the sdist is a source tree the test
suite runs from, the wheel the package and its licence, nothing else."""

import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

import skmdn
from skmdn import _fused

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("skmdn", "tests", "benchmarks", "examples")
SKIP = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", "*.py[cod]",
    ".hypothesis", ".pytest_cache", ".ruff_cache", "results", ".coverage",
    "*.so", "*.pyd",
)  # fmt: skip
# the compiled mixture loss, where the install built it (see setup.py)
EXTENSION = "skmdn/_cmixture" + sysconfig.get_config_var("EXT_SUFFIX")


def _source_files() -> set[str]:
    """The files of the checkout (or unpacked sdist) that an sdist must hold."""
    found = {"README.md", "LICENSE", "pyproject.toml", "setup.cfg", "setup.py"}
    found.add("conftest.py")
    found.add("requirements/constraints-cpu.txt")
    for folder in SOURCE_DIRS:
        for path in (ROOT / folder).rglob("*"):
            rel = path.relative_to(ROOT)
            built = path.suffix in (".so", ".pyd")  # made by the install
            if path.is_file() and "__pycache__" not in rel.parts and not built:
                found.add(rel.as_posix())
    return found


def _build(kind: str, tmp_path: Path) -> Path:
    """Build the sdist or wheel of a copy of the tree (the checkout stays clean)."""
    pytest.importorskip("setuptools")
    tree, out = tmp_path / "tree", tmp_path / "dist"
    shutil.copytree(ROOT, tree, ignore=SKIP)
    code = (
        "import sys; from setuptools import build_meta as b; "
        f"print(b.build_{kind}(sys.argv[1]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        cwd=tree,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return out / done.stdout.strip().splitlines()[-1]


def test_sdist_holds_the_whole_source_tree_and_the_licence(tmp_path):
    # Regression: the sdist had tests/test_*.py but not tests/conftest.py or
    # tests/__init__.py (so no test module could even be collected), nor the
    # benchmark scripts that tests/test_benchmarks.py runs, nor a LICENSE.
    sdist = _build("sdist", tmp_path)
    prefix = f"skmdn-{skmdn.__version__}/"
    with tarfile.open(sdist) as tar:
        names = {n.removeprefix(prefix) for n in tar.getnames()}
    missing = sorted(_source_files() - names)
    assert not missing, f"the sdist lacks {missing}"
    assert not {n for n in names if n.startswith(".ci/") or n.endswith(".pyc")}


def test_wheel_holds_the_package_and_the_licence_only(tmp_path):
    setuptools = pytest.importorskip("setuptools")
    version = tuple(int(p) for p in setuptools.__version__.split(".")[:2])
    if version < (70, 1):  # bdist_wheel came from the wheel package until then
        pytest.importorskip("wheel")
    wheel = _build("wheel", tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"skmdn-{skmdn.__version__}.dist-info/"
        metadata = archive.read(info + "METADATA").decode()
    package = {f"skmdn/{p.name}" for p in (ROOT / "skmdn").glob("*.py")}
    # PEP 561: the marker that tells type checkers the package is typed
    package.add("skmdn/py.typed")
    if _fused._cmixture is not None:  # this machine compiles it
        package.add(EXTENSION)
    assert {n for n in names if not n.startswith(info)} == package
    assert any(n.startswith(info) and n.endswith("LICENSE") for n in names)
    assert f"Version: {skmdn.__version__}\n" in metadata
    assert "License-File: LICENSE" in metadata


def test_stated_dependency_floors_are_setup_cfgs():
    # Regression: requirements/constraints-cpu.txt said the package needs
    # torch>=2.1 after setup.cfg had raised the floor to 2.3 (older wheels
    # cannot share arrays with NumPy 2).
    import configparser
    import re

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    floors = dict(
        re.findall(r"^([\w-]+)>=([\d.]+)$", config["options"]["install_requires"], re.M)
    )
    assert {"torch", "numpy", "scikit-learn", "scipy"} <= floors.keys()
    for path in [ROOT / "README.md", *sorted((ROOT / "requirements").glob("*"))]:
        text = path.read_text(encoding="utf-8")
        for name, version in re.findall(r"\b([\w-]+)>=(\d+(?:\.\d+)*)", text):
            if name in floors:
                assert version == floors[name], (
                    f"{path.name} states {name}>={version}; setup.cfg requires "
                    f"{name}>={floors[name]}"
                )


def _ci_script_and_bash() -> tuple[Path, str]:
    """``.ci/run`` and the bash to run its lines with (skip where either is
    missing: the sdist has no .ci/)."""
    script = ROOT / ".ci" / "run"
    if not script.exists():
        pytest.skip(".ci/ is not in the sdist")
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    return script, bash


def test_ci_stops_when_a_pip_install_fails():
    # Regression: .ci/run filtered pip's output with `pip ... 2>&1 | grep -v
    # "is ignored" || true`, and the `|| true` (there for grep, which fails
    # when --quiet pip prints nothing) also swallowed pip's own failure: a
    # failed install of the extras let CI go on in a reused .venv-ci, where
    # importorskip quietly skipped the integrations it should test.
    script, bash = _ci_script_and_bash()
    lines = script.read_text(encoding="utf-8").splitlines()
    suffixes = [
        line[line.index(" 2>&1") :]
        for line in lines
        if line.startswith("python -m pip install") and " 2>&1" in line
    ]
    assert len(suffixes) >= 3  # pip itself, torch, the package
    for suffix in suffixes:
        for status, output in ((1, "ERROR: no matching distribution"), (0, "")):
            run = subprocess.run(
                [bash, "-c", f"set -euo pipefail\n"
                 f"(printf '{output}'; exit {status}){suffix}\necho reached"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert ("reached" in run.stdout) == (status == 0), (suffix, run)
            assert (run.returncode == 0) == (status == 0), (suffix, run)


def test_ci_builds_a_fresh_environment_on_every_run(tmp_path):
    # Regression: `python3 -m venv .venv-ci` keeps an existing .venv-ci, so a
    # second run of .ci/run tested against the packages of the first: a
    # dependency dropped from setup.cfg stayed installed and CI passed where
    # a fresh machine fails. The script's venv line, run twice, must clear it.
    script, bash = _ci_script_and_bash()
    (line,) = (
        line
        for line in script.read_text(encoding="utf-8").splitlines()
        if line.startswith("python3 -m venv ")
    )
    # the same command, without pip (ensurepip would take most of the time)
    command = line.replace(
        "python3 -m venv ", f"{sys.executable} -m venv --without-pip "
    )
    target = tmp_path / line.split()[-1]
    subprocess.run([bash, "-c", command], cwd=tmp_path, check=True)
    stale = target / "stale-package-from-an-earlier-run"
    stale.write_text("")
    subprocess.run([bash, "-c", command], cwd=tmp_path, check=True)
    assert (target / "pyvenv.cfg").exists()
    assert not stale.exists()
