"""Shared test setup: the parity helpers are importable as plain modules."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for sub in ("parity",):
    path = str(HERE / sub)
    if path not in sys.path:
        sys.path.insert(0, path)
