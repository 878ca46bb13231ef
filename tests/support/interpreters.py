"""The CPython interpreters ``requires-python`` claims, found as .ci/run finds them:
``TYCHO_PYTHON_3_X`` if set, else pyenv's build ``$(pyenv root)/versions/3.X.*/bin/python3.X``
(pyenv root: ``PYENV_ROOT``, else ``pyenv root``, else ``~/.pyenv``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional

#: Every minor version the wheel is tested on (pyproject's classifiers name the same).
SUPPORTED = ("3.9", "3.10", "3.11", "3.12", "3.13")


def pyenv_root() -> Path:
    root = os.environ.get("PYENV_ROOT")
    if root:
        return Path(root)
    pyenv = shutil.which("pyenv")
    if pyenv:
        proc = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30)
        if proc.returncode == 0 and proc.stdout.strip():
            return Path(proc.stdout.strip())
    return Path.home() / ".pyenv"


def find_interpreter(version: str) -> Optional[str]:
    """Path of a CPython ``version`` ("3.9") interpreter, or None."""
    explicit = os.environ.get(f"TYCHO_PYTHON_{version.replace('.', '_')}")
    if explicit:
        return explicit
    candidates = sorted(
        pyenv_root().glob(f"versions/{version}.*/bin/python{version}"),
        key=lambda p: [int(x) for x in p.parts[-3].split(".") if x.isdigit()],
    )
    return str(candidates[-1]) if candidates else None


if __name__ == "__main__":
    # .ci/run: `python tests/support/interpreters.py 3.9` prints the interpreter's path,
    # or names the missing version and exits 1.
    import sys

    found = find_interpreter(sys.argv[1])
    if found is None:
        sys.exit(f"CPython {sys.argv[1]} is not installed: expected {pyenv_root()}/versions/{sys.argv[1]}.*"
                 f"/bin/python{sys.argv[1]} (pyenv install {sys.argv[1]}) or TYCHO_PYTHON_{sys.argv[1].replace('.', '_')}")
    print(found)
