"""A source build without a suitable Rust stops at once with one message saying what to
install (build_backend/tycho_build.py), through pip as a user runs it: `pip wheel` of the
checkout with no Rust on PATH, and with a Rust older than Cargo.toml's rust-version."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from build_env import clean_env

ROOT = Path(__file__).resolve().parents[2]


def required_rust() -> str:
    m = re.search(r'^rust-version\s*=\s*"([\d.]+)"', (ROOT / "Cargo.toml").read_text(), re.MULTILINE)
    assert m, "Cargo.toml has no rust-version"
    return m.group(1)


@pytest.fixture(scope="module")
def maturin_importable():
    try:
        import maturin  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("maturin is not installed in the test environment (.ci/run installs it)")
        pytest.skip("maturin is not installed here: `pip install maturin` to run the source-build checks")


def fake_rust(bin_dir: Path, version: str) -> None:
    bin_dir.mkdir()
    for tool, body in (("rustc", f'echo "rustc {version} (0000000 2024-01-01)"'), ("cargo", "exit 0")):
        script = bin_dir / tool
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)


@pytest.mark.skipif(os.name == "nt", reason="uses POSIX shell scripts as a fake rustc")
@pytest.mark.parametrize("rust", [None, "1.80.1"], ids=["no-rust", "old-rust"])
def test_source_build_without_suitable_rust_says_what_to_install(tmp_path, maturin_importable, rust):
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(home)
    if rust:
        fake_rust(tmp_path / "fakebin", rust)
        env["PATH"] = str(tmp_path / "fakebin") + os.pathsep + env["PATH"]
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-index", "--no-build-isolation", "--no-deps",
         "-w", str(tmp_path / "out"), str(ROOT)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    need = required_rust()
    assert f"building from source needs Rust {need} or newer" in out, out
    assert ("found rustc " + rust) in out if rust else "no Rust toolchain was found on PATH" in out, out
    assert "https://rustup.rs" in out and "pip install --only-binary tycho-api tycho-api" in out, out
    assert "Traceback" not in out, out
    assert "puccinialin" not in out, out
    assert not list((tmp_path / "out").glob("*.whl")) if (tmp_path / "out").exists() else True
