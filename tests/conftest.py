"""Shared test setup: the parity helpers are importable as plain modules, and one
emulated Kubernetes API server (tests/kube_emulator.py) serves the whole session."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (str(HERE / "parity"), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

from kube_emulator import kube_emulator, kube_emulator_session  # noqa: E402,F401
