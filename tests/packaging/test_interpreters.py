"""The one abi3 wheel on every CPython that ``requires-python`` claims (3.9 is appstore's):
installed into a fresh virtualenv of each interpreter (no network, no Rust), it imports
every public module of the original's layout, compiles every bundled example through
``System.parse`` + ``render`` and resolves a registry context over HTTP
(tests/support/interpreter_smoke.py).

Interpreters are pyenv builds (``$(pyenv root)/versions/3.X.*``; ``TYCHO_PYTHON_3_X``
names one explicitly). In CI a missing one is a failure that names it; elsewhere a skip
that says so. The wheel is TYCHO_TEST_WHEEL, the one .ci/run built once."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from build_env import clean_env
from interpreters import SUPPORTED, find_interpreter

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests" / "support" / "interpreter_smoke.py"
EXAMPLES = ROOT / "examples"
REGISTRY = ROOT / "tests" / "registry-small"


def _wheel() -> Path:
    path = os.environ.get("TYCHO_TEST_WHEEL")
    if not path:
        if os.environ.get("CI"):
            pytest.fail("TYCHO_TEST_WHEEL is not set: .ci/run sets it to the wheel it built")
        pytest.skip("TYCHO_TEST_WHEEL is not set (path of a built wheel, e.g. dist/tycho_api-*.whl)")
    return Path(path)


def test_requires_python_and_classifiers_name_the_tested_versions():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.9"' in text
    for version in SUPPORTED:
        assert f'"Programming Language :: Python :: {version}"' in text, version


@pytest.mark.parametrize("version", SUPPORTED)
def test_wheel_imports_compiles_and_resolves_on(version, tmp_path):
    wheel = _wheel()
    python = find_interpreter(version)
    if python is None:
        message = f"CPython {version} not found (pyenv root versions/{version}.*, or TYCHO_PYTHON_{version.replace('.', '_')})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    env_dir, home = tmp_path / "venv", tmp_path / "home"
    home.mkdir()
    proc = subprocess.run([python, "-m", "venv", str(env_dir)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    venv_python = env_dir / "bin" / "python"
    env = clean_env(home)
    proc = subprocess.run(
        [str(venv_python), "-m", "pip", "install", "-q", "--no-index", "--only-binary", ":all:", str(wheel)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run(
        [str(venv_python), "-I", str(SMOKE), str(EXAMPLES), str(REGISTRY)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, f"CPython {version}:\n{proc.stderr[-4000:]}"
    result = json.loads(proc.stdout)
    assert result["python"] == [int(p) for p in version.split(".")]
    assert str(env_dir) in result["tycho_file"], result["tycho_file"]
    examples = sorted(p.parent.name for p in EXAMPLES.glob("*/docker-compose.yaml"))
    assert sorted(result["examples"]) == examples and examples
    for name, compiled in result["examples"].items():
        assert compiled["kinds"][0] == "Pod", (name, compiled)
        assert compiled["containers"], name
    registry = result["registry"]
    assert registry["apps"] == ["board", "hello"]
    assert registry["hello_image"] == "registry.example.org/tests/hello:1.0"
    assert "GREETING" in registry["hello_settings"]
    assert any(p.endswith("app-registry.yaml") for p in registry["requests"]), registry["requests"]
