"""PEP 517 build backend of tycho-api: maturin's, after a check of the Rust toolchain.

A build from source (the sdist, or a checkout) compiles the Rust core and needs Rust of
at least Cargo.toml's `rust-version`. Without Rust, maturin's backend would ask pip for
`puccinialin` and download a temporary toolchain (an 81-line traceback when offline);
with an older Rust, cargo fails late. This backend stops first, with one message saying
what to install. `TYCHO_BUILD_FETCH_RUST=1` keeps maturin's download instead.
Wheels never run any of this.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

import maturin

_HERE = Path(__file__).resolve().parent.parent


def _required() -> tuple[int, int]:
    """The `rust-version` of Cargo.toml as (major, minor); (1, 85) if unreadable."""
    try:
        text = (_HERE / "Cargo.toml").read_text(encoding="utf-8")
    except OSError:
        return (1, 85)
    m = re.search(r'^rust-version\s*=\s*"(\d+)\.(\d+)', text, re.MULTILINE)
    return (int(m.group(1)), int(m.group(2))) if m else (1, 85)


def _found() -> Optional[str]:
    """The output of `rustc --version`, or None when cargo or rustc is not on PATH."""
    if not shutil.which("cargo") or not shutil.which("rustc"):
        return None
    try:
        out = subprocess.run(["rustc", "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _problem() -> Optional[str]:
    """Why this machine cannot build tycho-api from source, or None when it can."""
    if os.environ.get("TYCHO_BUILD_FETCH_RUST") == "1":
        return None
    need = _required()
    found = _found()
    if found is None:
        what = "no Rust toolchain was found on PATH (cargo, rustc)"
    else:
        m = re.match(r"rustc (\d+)\.(\d+)", found)
        if not m or (int(m.group(1)), int(m.group(2))) >= need:
            return None
        what = f"found {found}"
    version = f"{need[0]}.{need[1]}"
    return (
        f"tycho-api: building from source needs Rust {version} or newer; {what}.\n"
        "  Install Rust with rustup (https://rustup.rs):\n"
        "      curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh\n"
        "  or update an older one with `rustup update`, then retry.\n"
        "  Or install a prebuilt wheel instead (no Rust needed):\n"
        "      pip install --only-binary tycho-api tycho-api\n"
        "  Wheels exist for Linux x86_64/aarch64 (glibc >= 2.17, musl), macOS x86_64/arm64\n"
        "  and Windows x86_64. TYCHO_BUILD_FETCH_RUST=1 lets maturin download a temporary\n"
        "  Rust instead of stopping here.\n"
    )


def _check() -> None:
    problem = _problem()
    if problem:
        sys.stderr.write(problem)
        sys.stderr.flush()
        raise SystemExit(1)


def get_requires_for_build_wheel(config_settings: Optional[Mapping[str, Any]] = None) -> list[str]:
    _check()
    return list(maturin.get_requires_for_build_wheel(config_settings))


def get_requires_for_build_editable(config_settings: Optional[Mapping[str, Any]] = None) -> list[str]:
    _check()
    hook = getattr(maturin, "get_requires_for_build_editable", maturin.get_requires_for_build_wheel)
    return list(hook(config_settings))


def get_requires_for_build_sdist(config_settings: Optional[Mapping[str, Any]] = None) -> list[str]:
    _check()
    return list(maturin.get_requires_for_build_sdist(config_settings))


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: Optional[Mapping[str, Any]] = None) -> str:
    _check()
    return str(maturin.prepare_metadata_for_build_wheel(metadata_directory, config_settings))


def build_wheel(
    wheel_directory: str,
    config_settings: Optional[Mapping[str, Any]] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    _check()
    return str(maturin.build_wheel(wheel_directory, config_settings, metadata_directory))


def build_editable(
    wheel_directory: str,
    config_settings: Optional[Mapping[str, Any]] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    _check()
    return str(maturin.build_editable(wheel_directory, config_settings, metadata_directory))


def build_sdist(sdist_directory: str, config_settings: Optional[Mapping[str, Any]] = None) -> str:
    _check()
    return str(maturin.build_sdist(sdist_directory, config_settings))


if hasattr(maturin, "prepare_metadata_for_build_editable"):  # optional PEP 660 hook

    def prepare_metadata_for_build_editable(
        metadata_directory: str, config_settings: Optional[Mapping[str, Any]] = None
    ) -> str:
        _check()
        return str(maturin.prepare_metadata_for_build_editable(metadata_directory, config_settings))
