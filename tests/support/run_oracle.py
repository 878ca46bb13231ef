"""Run the original tycho-api 1.17.3 on start-request cases (stdlib only).

    from run_oracle import original_objects
    results = original_objects(CASES)   # same order as CASES

Each result is ``{"name", "objects", "result"}`` or ``{"name", "error", "stage"}``
(see oracle.py).  Results are cached in ``<repo>/.cache/parity-oracle/`` keyed
by a hash of the cases, oracle.py and the venv's pinned spec, so repeated test
runs do not start the original again.  Set ``TYCHO_PARITY_NO_CACHE=1`` to skip
the cache.

Command line: ``python run_oracle.py [out.json]`` runs every case of cases.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORACLE = HERE / "oracle.py"


def _load_sibling(name: str):
    """Import a module of this directory by path (works with or without a package)."""
    import importlib.util

    key = f"_tycho_parity_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[key] = mod
    spec.loader.exec_module(mod)
    return mod


orig_env = _load_sibling("orig_env")
SWITCHES = tuple(_load_sibling("oracle").SWITCHES)
CACHE_DIR = orig_env.REPO_ROOT / ".cache" / "parity-oracle"


def _cache_key(payload: str) -> str:
    h = hashlib.sha256()
    h.update(payload.encode())
    h.update(ORACLE.read_bytes())
    h.update(orig_env._spec_hash().encode())
    return h.hexdigest()[:24]


def run_oracle(cases, venv=None, timeout=600) -> list:
    """Run oracle.py in the original's venv (no cache)."""
    py = orig_env.ensure_original_venv(venv)
    payload = json.dumps(list(cases))
    with tempfile.TemporaryDirectory(prefix="tycho-oracle-") as tmp:
        proc = subprocess.run(
            [py, str(ORACLE)],
            input=payload,
            cwd=tmp,
            env=orig_env.isolated_env(tmp),
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if proc.returncode != 0:
        raise RuntimeError(
            f"oracle.py failed ({proc.returncode}):\n{proc.stderr[-6000:]}"
        )
    results = json.loads(proc.stdout)
    if len(results) != len(cases):
        raise RuntimeError(
            f"oracle returned {len(results)} results for {len(cases)} cases"
        )
    return results


def original_objects(cases, venv=None, use_cache=None) -> list:
    """Results of the original for ``cases`` (same order), cached on disk."""
    cases = list(cases)
    if use_cache is None:
        use_cache = os.environ.get("TYCHO_PARITY_NO_CACHE", "") not in ("1", "true")
    payload = json.dumps(cases, sort_keys=True)
    path = CACHE_DIR / f"{_cache_key(payload)}.json"
    if use_cache and path.is_file():
        try:
            return json.loads(path.read_text())
        except ValueError:
            pass
    results = run_oracle(cases, venv=venv)
    if use_cache:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(results, indent=1) + "\n")
        os.replace(tmp, path)
    return results


def main(argv=None) -> int:
    import time

    CASES = _load_sibling("cases").CASES

    argv = sys.argv[1:] if argv is None else argv
    t0 = time.monotonic()
    results = original_objects(CASES, use_cache=False)
    text = json.dumps(results, indent=1) + "\n"
    if argv:
        Path(argv[0]).write_text(text)
    else:
        sys.stdout.write(text)
    bad = []
    for case, res in zip(CASES, results, strict=True):
        failed = "error" in res
        if failed != bool(case.get("expect_error")):
            bad.append(
                f"{case['name']}: expect_error={case.get('expect_error')} got "
                f"{res.get('error', 'objects')}"
            )
    print(f"{len(results)} cases in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    for line in bad:
        print("MISMATCH " + line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
