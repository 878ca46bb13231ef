"""Import benchmark: ``import tycho.context`` in a fresh process, ours vs tycho-api 1.17.3.

Each run starts a new interpreter that imports ``tycho.context`` and exits. Measured per
run: the wall time of the whole process (spawn to exit, interpreter start-up included),
the time of the import statement alone (perf_counter inside the child), and the child's
maximum resident set size (``os.wait4`` rusage of that child). The best of N runs is
reported for each, after one unmeasured warm-up run (so both start with a warm file
cache and compiled bytecode, kept in a private PYTHONPYCACHEPREFIX). The bare interpreter (``python -c pass``) of each environment is shown as the
floor.

The original runs from the virtualenv built by tests/support/orig_env.py
(``ensure_original_venv``); it loads a kubeconfig at import time, so it gets a dummy one
(``isolated_env``) in a temporary HOME and working directory.

    python benches/import_bench.py [-n RUNS] [--json] [--no-bytecode-cache]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

import orig_env  # noqa: E402

IMPORT = (
    "import time, sys; t = time.perf_counter(); import tycho.context; "
    "sys.stdout.write(repr(time.perf_counter() - t))"
)
BARE = "pass"


def run_once(python: str, code: str, env: dict, cwd: str) -> dict:
    """One fresh process: wall seconds, import seconds (if printed), max RSS in MiB."""
    started = time.perf_counter()
    proc = subprocess.Popen([python, "-c", code], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read() if proc.stdout else b""
    err = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{python} -c {code!r} failed ({proc.returncode}):\n{err.decode(errors='replace')[-2000:]}")
    text = out.decode().strip()
    return {
        "wall": wall,
        "import": float(text) if text else None,
        "rss_mib": usage.ru_maxrss / 1024.0,  # Linux: KiB
    }


def best_of(python: str, code: str, env: dict, cwd: str, runs: int) -> dict:
    run_once(python, code, env, cwd)  # warm-up
    samples = [run_once(python, code, env, cwd) for _ in range(runs)]
    imports = [s["import"] for s in samples if s["import"] is not None]
    return {
        "wall": min(s["wall"] for s in samples),
        "import": min(imports) if imports else None,
        "rss_mib": min(s["rss_mib"] for s in samples),
        "runs": runs,
    }


def ours_env(home: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "PYTHONPATH"))}
    env["HOME"] = home
    env["KUBECONFIG"] = os.path.join(home, "no-kubeconfig")  # ours reads none at import
    return env


def measure(runs: int, bytecode_cache: bool = True) -> dict:
    original_python = orig_env.ensure_original_venv()
    with tempfile.TemporaryDirectory(prefix="tycho-import-bench-") as tmp:
        ours_home = os.path.join(tmp, "ours")
        orig_home = os.path.join(tmp, "orig")
        os.makedirs(ours_home)
        os.makedirs(orig_home)
        env_ours = ours_env(ours_home)
        env_orig = orig_env.isolated_env(orig_home)
        # Bytecode as an installed package has it: compiled by the warm-up run into a
        # private cache (never into the source tree or the venv), read by the measured runs.
        for env, name in ((env_ours, "ours"), (env_orig, "orig")):
            if bytecode_cache:
                env.pop("PYTHONDONTWRITEBYTECODE", None)
                env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, f"pycache-{name}")
            else:  # only bytecode already on disk is used; nothing is written
                env["PYTHONDONTWRITEBYTECODE"] = "1"
                env.pop("PYTHONPYCACHEPREFIX", None)
        results = {
            "ours": best_of(sys.executable, IMPORT, env_ours, ours_home, runs),
            "ours_bare": best_of(sys.executable, BARE, env_ours, ours_home, runs),
            "original": best_of(original_python, IMPORT, env_orig, orig_home, runs),
            "original_bare": best_of(original_python, BARE, env_orig, orig_home, runs),
        }
    ours, orig = results["ours"], results["original"]
    results["ratios"] = {
        "wall": orig["wall"] / ours["wall"],
        "import": orig["import"] / ours["import"],
        "rss": orig["rss_mib"] / ours["rss_mib"],
        "import_rss_over_bare": (orig["rss_mib"] - results["original_bare"]["rss_mib"])
        / max(ours["rss_mib"] - results["ours_bare"]["rss_mib"], 0.1),
    }
    results["python"] = sys.version.split()[0]
    results["bytecode_cache"] = bytecode_cache
    return results


def table(r: dict) -> str:
    def ms(v):
        return "—" if v is None else f"{v * 1000:.1f} ms"

    rows = [
        ("tycho-api 1.17.3", r["original"]),
        ("ours", r["ours"]),
        ("bare python (original's venv)", r["original_bare"]),
        ("bare python (ours)", r["ours_bare"]),
    ]
    lines = [
        f"import tycho.context in a fresh process, best of {r['ours']['runs']} (Python {r['python']}, "
        + ("compiled bytecode cached" if r["bytecode_cache"] else "no bytecode written: modules without a .pyc compile every run")
        + ")",
        "",
        "| | process wall time | import statement | max RSS |",
        "| --- | --- | --- | --- |",
    ]
    for name, m in rows:
        lines.append(f"| {name} | {ms(m['wall'])} | {ms(m['import'])} | {m['rss_mib']:.1f} MiB |")
    q = r["ratios"]
    lines += [
        "",
        f"original / ours: process wall time {q['wall']:.1f}x, import statement {q['import']:.1f}x, "
        f"max RSS {q['rss']:.1f}x (memory added by the import over the bare interpreter: "
        f"{q['import_rss_over_bare']:.1f}x)",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--runs", type=int, default=7, help="measured runs per row (default 7)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="write no bytecode (PYTHONDONTWRITEBYTECODE=1): modules without a .pyc on disk compile every run")
    args = parser.parse_args(argv)
    results = measure(max(1, args.runs), bytecode_cache=not args.no_bytecode_cache)
    print(json.dumps(results, indent=2) if args.json else table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
