"""The library API: docs/api.md's examples run as doctests, and the version has one source."""

import doctest
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import skbsim

ROOT = Path(__file__).resolve().parent.parent


def test_docs_api_examples_run():
    failures, tried = doctest.testfile(str(ROOT / "docs" / "api.md"), module_relative=False,
                                       optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert tried >= 20 and failures == 0


def test_version_is_pyprojects():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert skbsim.__version__ == version("skbsim") == declared
    done = subprocess.run([sys.executable, "-m", "skbsim", "--version"], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, f"skbsim {declared}\n")


def test_import_is_cheap_and_names_are_documented():
    done = subprocess.run([sys.executable, "-c", "import sys, skbsim; print(sorted(m for m in sys.modules "
                           "if m.startswith(('numpy', 'numba', 'rich', 'matplotlib', 'skbsim.'))))"],
                          capture_output=True, text=True)
    assert done.stdout.strip() == "[]"
    text = (ROOT / "docs" / "api.md").read_text()
    for name in skbsim.__all__:
        assert name in text or name == "__version__" and "__version__" in text, name
