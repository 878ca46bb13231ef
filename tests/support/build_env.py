"""The environment of a fresh virtualenv or pip run in the packaging tests: no pip, cargo,
rustup or maturin settings, no Rust on PATH, no cluster, its own HOME.

Used by test_wheel_install.py and test_source_build.py.
"""

from __future__ import annotations

import os
from pathlib import Path


def no_rust_path() -> str:
    """PATH without ~/.cargo/bin and without any directory holding cargo or rustc."""
    cargo_home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo")) / "bin"
    keep = []
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not entry or Path(entry) == cargo_home or Path(entry) == Path.home() / ".cargo" / "bin":
            continue
        if any((Path(entry) / tool).exists() for tool in ("cargo", "rustc", "rustup")):
            continue
        keep.append(entry)
    return os.pathsep.join(keep)


def clean_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "CARGO", "RUSTUP", "MATURIN"))}
    for key in ("PYTHONPATH", "KUBECONFIG", "KUBERNETES_SERVICE_HOST", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(key, None)
    env.update(PATH=no_rust_path(), HOME=str(home), PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env
