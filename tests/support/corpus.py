"""Where the HeLx app catalogue (registry + specs) is: ``TYCHO_HELX_CORPUS``, else the
repository-relative ``../shared/corpus/helx-apps`` (a clone's sibling ``shared/``).
Tests that need it say plainly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def helx_corpus() -> Path:
    """The catalogue directory (it may not exist)."""
    explicit = os.environ.get("TYCHO_HELX_CORPUS")
    return Path(explicit) if explicit else REPO.parent / "shared" / "corpus" / "helx-apps"
