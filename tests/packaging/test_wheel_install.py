"""The built wheel, installed as a new user would: a fresh virtualenv, no Rust on PATH, no
network (`pip install --no-index`; the package has no runtime dependencies) and a HOME
without `.kube`. The wheel is the one `.ci/run` builds (manylinux2014, zig) and runs every
other test stage against; its path comes from TYCHO_TEST_WHEEL."""

from __future__ import annotations

import email
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from build_env import clean_env

ROOT = Path(__file__).resolve().parents[2]
SOURCE_PACKAGE = ROOT / "python" / "tycho"


@pytest.fixture(scope="module")
def wheel() -> Path:
    path = os.environ.get("TYCHO_TEST_WHEEL")
    if not path:
        if os.environ.get("CI"):
            pytest.fail("TYCHO_TEST_WHEEL is not set: .ci/run sets it to the wheel it built")
        pytest.skip("TYCHO_TEST_WHEEL is not set (path of a built wheel, e.g. dist/tycho_api-*.whl)")
    p = Path(path)
    assert p.is_file(), f"TYCHO_TEST_WHEEL={path} is not a file"
    return p


def bin_dir(root: Path) -> Path:
    return root / ("Scripts" if os.name == "nt" else "bin")


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A fresh virtualenv with only the wheel installed; returns (venv, env, home, workdir)."""
    base = tmp_path_factory.mktemp("wheel-install")
    home, work, env_dir = base / "home", base / "work", base / "venv"
    home.mkdir()
    work.mkdir()
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    env = clean_env(home)
    assert shutil.which("cargo", path=env["PATH"]) is None
    assert shutil.which("rustc", path=env["PATH"]) is None
    python = bin_dir(env_dir) / "python"
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-index", "--only-binary", ":all:", str(wheel)],
        capture_output=True, text=True, cwd=work, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return env_dir, env, home, work


def test_tests_import_the_installed_wheel_not_the_source_tree(wheel):
    """Every other test stage of .ci/run must exercise the wheel, not python/tycho."""
    import tycho
    import tycho._native

    for module in (tycho, tycho._native):
        path = Path(module.__file__).resolve()
        assert SOURCE_PACKAGE not in path.parents, f"{module.__name__} imported from the source tree: {path}"
        assert "site-packages" in path.parts, path


def test_render_and_import_in_fresh_venv(wheel, installed):
    env_dir, env, home, work = installed
    example = ROOT / "examples" / "jupyter-ds" / "docker-compose.yaml"
    proc = subprocess.run(
        [str(bin_dir(env_dir) / "tycho"), "render", "-f", str(example), "-o", "json"],
        capture_output=True, text=True, cwd=work, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    items = json.loads(proc.stdout)["items"]
    assert items[0]["kind"] == "Deployment"
    assert items[0]["metadata"]["name"].startswith("jupyter-ds-")
    assert any(o["kind"] == "Service" for o in items)

    code = (
        "import json, tycho, tycho.context, tycho._native;"
        "from tycho.context import ContextFactory;"
        "print(json.dumps([tycho.__file__, tycho._native.__file__, tycho.__version__]))"
    )
    proc = subprocess.run(
        [str(bin_dir(env_dir) / "python"), "-c", code],
        capture_output=True, text=True, cwd=work, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    pkg, native, version = json.loads(proc.stdout)
    assert Path(pkg).resolve().is_relative_to(env_dir.resolve())
    assert Path(native).resolve().is_relative_to(env_dir.resolve())
    assert version == metadata_of(wheel)["Version"]
    assert not (home / ".kube").exists()


def metadata_of(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(zf.read(name))


def test_wheel_carries_types_stubs_conf_and_license(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert "tycho/py.typed" in names
    stubs = {f"tycho/{p.name}" for p in SOURCE_PACKAGE.glob("*.pyi")}
    assert stubs == {"tycho/_native.pyi"}, sorted(stubs)  # the modules carry inline annotations
    assert stubs <= names, sorted(stubs - names)
    conf = {f"tycho/conf/{p.name}" for p in (SOURCE_PACKAGE / "conf").iterdir() if p.is_file()}
    assert {"tycho/conf/tycho.yaml", "tycho/conf/app-registry.yaml", "tycho/conf/app-defaults.yaml"} <= conf
    assert conf <= names, sorted(conf - names)
    assert "tycho/api-schema.yaml" in names
    assert any(re.fullmatch(r"tycho_api-[^/]+\.dist-info/licenses/LICENSE", n) for n in names), sorted(names)
    assert any(re.fullmatch(r"tycho/_native\.(abi3\.so|pyd)", n) for n in names)


def test_wheel_metadata_is_ready_for_pypi(wheel):
    meta = metadata_of(wheel)
    assert meta["Name"] == "tycho-api"
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["Requires-Python"] == ">=3.9"
    assert not meta.get_all("Requires-Dist") or all("extra ==" in r for r in meta.get_all("Requires-Dist"))
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert {"Homepage", "Repository", "Issues"} <= set(urls)
    assert all(u.startswith("https://") for u in urls.values())
    classifiers = meta.get_all("Classifier")
    assert "Typing :: Typed" in classifiers and "Programming Language :: Rust" in classifiers
    assert not any(c.startswith("License ::") for c in classifiers), "PEP 639: the license is an expression"
    assert meta["Keywords"] and "kubernetes" in meta["Keywords"]
    body = meta.get_payload()
    assert meta["Description-Content-Type"].startswith("text/markdown")
    first = next(line for line in body.splitlines() if line.strip() and not line.startswith("```"))
    assert first.strip() == "pip install tycho-api"
    links = re.findall(r"\]\(([^)]+)\)", body)
    assert links and all(link.startswith("https://") for link in links), links


def elf_section_types(path_bytes: bytes) -> list:
    """sh_type of every section of a little-endian ELF64 image."""
    assert path_bytes[:4] == b"\x7fELF" and path_bytes[4] == 2 and path_bytes[5] == 1
    shoff = struct.unpack_from("<Q", path_bytes, 0x28)[0]
    shentsize, shnum = struct.unpack_from("<HH", path_bytes, 0x3A)
    return [struct.unpack_from("<I", path_bytes, shoff + i * shentsize + 4)[0] for i in range(shnum)]


@pytest.mark.skipif(sys.platform != "linux", reason="the manylinux2014 checks apply to the Linux wheel")
def test_linux_wheel_is_manylinux2014_and_stripped(wheel):
    assert re.search(r"-cp39-abi3-.*manylinux_2_17_x86_64", wheel.name), wheel.name
    with zipfile.ZipFile(wheel) as zf:
        so = zf.read("tycho/_native.abi3.so")
        wheel_info = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/WHEEL"))).decode()
    assert "Tag: cp39-abi3-manylinux_2_17_x86_64" in wheel_info
    assert 2 not in elf_section_types(so), "the extension still has a symbol table (.symtab): not stripped"
    # glibc symbol versions above 2.17 would make the wheel unusable on RHEL/CentOS 7.
    found = re.findall(rb"GLIBC_(\d+\.\d+(?:\.\d+)?)", so)
    versions = {tuple(int(x) for x in v.decode().split(".")) for v in found}
    assert versions and max(versions) <= (2, 17), sorted(versions)
