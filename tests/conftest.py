"""Shared test setup: the helper modules of tests/support/ are importable as plain
modules, and one emulated Kubernetes API server (support/kube_emulator.py) serves the
whole session."""

import sys
from pathlib import Path

SUPPORT = str(Path(__file__).resolve().parent / "support")
if SUPPORT not in sys.path:
    sys.path.insert(0, SUPPORT)

from kube_emulator import kube_emulator, kube_emulator_session  # noqa: E402,F401
