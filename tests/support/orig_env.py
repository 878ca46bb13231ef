"""Build a virtualenv that runs the ORIGINAL tycho-api 1.17.3 (stdlib only).

The parity tests compare what our Rust rewrite creates with what the released
Python package would create.  This module builds (once) a CPython 3.11
virtualenv holding ``tycho-api==1.17.3`` installed with ``--no-deps`` plus a
pinned dependency set that imports cleanly on 3.11.

Public API:

* ``ensure_original_venv(path=None) -> str``: path of the venv's python.
* ``dummy_kubeconfig(dirpath, server=...) -> str``: write a minimal kubeconfig
  (``tycho.client``/``tycho.context``/``tycho.api`` load one at import time).

Default venv location: ``$TYCHO_ORIG_VENV`` or ``<repo>/.cache/orig-venv``.
The interpreter used to create the venv: ``$TYCHO_ORIG_PYTHON`` or the first
``python3.11`` found (or the current interpreter when it is 3.11).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # <repo>/tests/support/orig_env.py
DEFAULT_VENV = REPO_ROOT / ".cache" / "orig-venv"
MARKER_NAME = ".tycho-orig-ready.json"

ORIGINAL = "tycho-api==1.17.3"

# Every distribution the original imports, fully pinned (transitive closure),
# installed with --no-deps so the result is reproducible.  The original's own
# pins (Flask 2.0.3, Jinja2 3.0.3, kubernetes 25.3.0, jsonschema 3.2.0, ...)
# are kept; only unpinned transitive dependencies were chosen here.
PINNED_DEPS = (
    "aniso8601==10.0.1",
    "appdirs==1.4.4",
    "attrs==21.4.0",
    "cattrs==1.10.0",
    "certifi==2026.10.18",
    "cffi==2.1.1",
    "charset-normalizer==3.5.2",
    "click==8.5.1",
    "cryptography==50.0.2",
    "deepmerge==1.0.1",
    "distro==1.9.0",
    "docker==6.1.3",
    "dockerpty==0.4.1",
    "docopt==0.6.2",
    "flasgger==0.9.5",
    "Flask==2.0.3",
    "Flask-Cors==3.0.10",
    "Flask-RESTful==0.3.9",
    "gitdb==4.0.12",
    "GitPython==3.1.11",
    "google-auth==2.62.2",
    "idna==3.20",
    "itsdangerous==2.2.0",
    "Jinja2==3.0.3",
    "jsonschema==3.2.0",
    "kubernetes==25.3.0",
    "MarkupSafe==2.0.1",
    "mistune==3.4.0",
    "oauthlib==4.0.1",
    "packaging==26.3",
    "pyasn1==0.6.5",
    "pyasn1_modules==0.4.2",
    "pycparser==3.12",
    "pyrsistent==0.20.0",
    "python-dateutil==4.0.0",
    "python-dotenv==0.21.1",
    "pytz==2026.6",
    "requests==2.31.0",
    "requests-cache==0.9.2",
    "requests-oauthlib==2.0.0",
    "six==1.17.0",
    "smmap==5.0.3",
    "texttable==1.7.2",
    "tzdata==2026.6",
    "url-normalize==1.4.3",
    "urllib3==1.26.20",
    "websocket-client==0.59.0",
    "Werkzeug==2.0.3",
)

# Alternatives tried in order; the first that installs wins.
# PyYAML 5.4.1 (the original's pin) has no cp311 wheel and only builds from
# source with Cython < 3; 6.0.1 behaves the same for safe_load/load_all/dump.
PYYAML_CHOICES = ("PyYAML==5.4.1", "PyYAML==6.0.1")
# netifaces 0.11.0 has no cp311 wheel (needs a C compiler); the fork is a
# drop-in that ships wheels.
NETIFACES_CHOICES = ("netifaces==0.11.0", "netifaces-plus==0.12.5")
# Imported by tycho.dockerc (tycho.core -> tycho.factory), installed --no-deps
# because it pins PyYAML<6 and websocket-client<1, which we satisfy anyway.
NO_DEPS_TOP = (ORIGINAL, "docker-compose==1.29.2")

IMPORT_CHECK = (
    "import tycho, tycho.model, tycho.kube, tycho.config, tycho.tycho_utils, "
    "tycho.client, tycho.context, tycho.api, tycho.core, yaml, jinja2, kubernetes; "
    "import json, sys; "
    "print(json.dumps({'tycho': tycho.VERSION, 'yaml': yaml.__version__, "
    "'jinja2': jinja2.__version__, 'python': sys.version.split()[0]}))"
)
QUICK_CHECK = "import tycho.model, tycho.kube, tycho.config, kubernetes.client"


def _spec_hash() -> str:
    blob = json.dumps(
        [ORIGINAL, PINNED_DEPS, PYYAML_CHOICES, NETIFACES_CHOICES, NO_DEPS_TOP]
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _find_base_python() -> str:
    env = os.environ.get("TYCHO_ORIG_PYTHON")
    if env:
        return env
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    if found:
        return found
    raise RuntimeError(
        "CPython 3.11 is needed for the original tycho-api venv: "
        "set TYCHO_ORIG_PYTHON or put python3.11 on PATH"
    )


def dummy_kubeconfig(dirpath, server="https://127.0.0.1:6443") -> str:
    """Write a minimal kubeconfig to ``<dirpath>/config`` and return its path."""
    d = Path(dirpath)
    d.mkdir(parents=True, exist_ok=True)
    path = d / "config"
    path.write_text(
        "apiVersion: v1\n"
        "kind: Config\n"
        "preferences: {}\n"
        "clusters:\n"
        "- name: dummy\n"
        "  cluster:\n"
        f"    server: {server}\n"
        "    insecure-skip-tls-verify: true\n"
        "contexts:\n"
        "- name: dummy\n"
        "  context:\n"
        "    cluster: dummy\n"
        "    namespace: default\n"
        "    user: dummy\n"
        "current-context: dummy\n"
        "users:\n"
        "- name: dummy\n"
        "  user:\n"
        "    token: dummy-token\n"
    )
    return str(path)


def isolated_env(home: str, extra: dict | None = None) -> dict:
    """An environment for running the original: no cluster, dummy kubeconfig."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "KUBERNETES_", "PIP_"))
    }
    env.pop("TYCHO_ON_MINIKUBE", None)
    env["HOME"] = home
    env["KUBECONFIG"] = dummy_kubeconfig(Path(home) / ".kube")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONHASHSEED"] = "0"
    if extra:
        env.update(extra)
    return env


def _run(cmd, env=None, cwd=None):
    proc = subprocess.run(
        [str(c) for c in cmd],
        check=False,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc.returncode, proc.stdout


def _pip(py: Path, args, extra_env=None) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_CONSTRAINT",)}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if extra_env:
        env.update(extra_env)
    return _run([py, "-m", "pip", "install", "--no-input", *args], env=env)


def _install_first(py: Path, choices, log, extra_env=None) -> str:
    errors = []
    for choice in choices:
        rc, out = _pip(py, ["--no-deps", choice], extra_env)
        log.append(out)
        if rc == 0:
            return choice
        errors.append(f"{choice}: {out[-2000:]}")
    joined = "\n".join(errors)
    raise RuntimeError(f"could not install any of {choices}:\n{joined}")


def _check(py: Path, code: str) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="tycho-orig-check-") as tmp:
        rc, out = _run([py, "-c", code], env=isolated_env(tmp), cwd=tmp)
    return rc == 0, out


def _marker_ok(venv: Path) -> bool:
    marker = venv / MARKER_NAME
    py = _venv_python(venv)
    if not (marker.is_file() and py.exists()):
        return False
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if data.get("spec_hash") != _spec_hash():
        return False
    ok, _ = _check(py, QUICK_CHECK)
    return ok


@contextlib.contextmanager
def _lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - non-POSIX
            pass
        yield
    finally:
        os.close(fd)


def _build(venv: Path) -> dict:
    started = time.monotonic()
    log: list[str] = []
    base = _find_base_python()
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    rc, out = _run([base, "-m", "venv", venv])
    if rc != 0:
        raise RuntimeError(f"venv creation failed:\n{out}")
    py = _venv_python(venv)

    rc, out = _pip(py, ["--no-deps", *PINNED_DEPS])
    log.append(out)
    if rc != 0:
        raise RuntimeError(f"pinned dependency install failed:\n{out[-4000:]}")

    with tempfile.TemporaryDirectory(prefix="tycho-orig-constraints-") as tmp:
        constraints = Path(tmp) / "build-constraints.txt"
        constraints.write_text("cython<3\n")
        yaml_choice = _install_first(
            py, PYYAML_CHOICES, log, {"PIP_CONSTRAINT": str(constraints)}
        )
    netifaces_choice = _install_first(py, NETIFACES_CHOICES, log)

    rc, out = _pip(py, ["--no-deps", *NO_DEPS_TOP])
    log.append(out)
    if rc != 0:
        raise RuntimeError(f"{ORIGINAL} install failed:\n{out[-4000:]}")

    ok, out = _check(py, IMPORT_CHECK)
    if not ok:
        raise RuntimeError(f"original tycho does not import in {venv}:\n{out[-4000:]}")
    versions = json.loads(out.strip().splitlines()[-1])
    rc, freeze = _run([py, "-m", "pip", "freeze", "--all"])
    data = {
        "spec_hash": _spec_hash(),
        "versions": versions,
        "pyyaml": yaml_choice,
        "netifaces": netifaces_choice,
        "freeze": freeze.split(),
        "build_seconds": round(time.monotonic() - started, 1),
    }
    (venv / MARKER_NAME).write_text(json.dumps(data, indent=2) + "\n")
    return data


def venv_dir(path=None) -> Path:
    return Path(path or os.environ.get("TYCHO_ORIG_VENV") or DEFAULT_VENV).resolve()


def ensure_original_venv(path=None) -> str:
    """Build the original's venv if needed; return its python interpreter path.

    Idempotent: when the marker file matches the pinned spec and the venv still
    imports ``tycho.model``/``tycho.kube``, nothing is installed.
    """
    venv = venv_dir(path)
    if _marker_ok(venv):
        return str(_venv_python(venv))
    with _lock(venv.parent / (venv.name + ".lock")):
        if not _marker_ok(venv):
            _build(venv)
    return str(_venv_python(venv))


def venv_info(path=None) -> dict:
    """The marker data (versions, pins, build time) of a built venv."""
    return json.loads((venv_dir(path) / MARKER_NAME).read_text())


if __name__ == "__main__":
    t0 = time.monotonic()
    print(ensure_original_venv(sys.argv[1] if len(sys.argv) > 1 else None))
    print(f"ready in {time.monotonic() - t0:.1f}s", file=sys.stderr)
