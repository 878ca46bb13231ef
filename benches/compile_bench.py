"""Compile-time benchmark: ours vs the original tycho-api 1.17.3, same inputs, one run.

For every valid parity case (tests/support/cases.py) both implementations parse the start
request and render every object of the system (Deployment, NetworkPolicy, Services):
ours through tycho._native.compile_request, the original through System.parse and
KubernetesCompute.start on an in-memory stand-in of the cluster (tests/support/oracle.py).
Prints the mean time per system of each and the ratio.

    python benches/compile_bench.py [--rounds N]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

import orig_env  # noqa: E402
from cases import CASES  # noqa: E402
from run_oracle import SWITCHES  # noqa: E402

ORIGINAL_TIMER = r"""
import contextlib, json, sys, time, logging
sys.path.insert(0, sys.argv[1])
logging.disable(logging.CRITICAL)
with contextlib.redirect_stdout(sys.stderr):
    import oracle
    import tycho.config as config_mod
    from kubernetes.client import ApiClient
    from tycho import kube, model
    mods = (model, kube, config_mod, ApiClient)
    cases = json.load(sys.stdin)
    rounds = int(sys.argv[2])
    times = []
    for _ in range(rounds):
        for case in cases:
            t = time.perf_counter()
            r = oracle.run_case(case, mods)
            times.append(time.perf_counter() - t)
            assert "objects" in r, r
print(json.dumps(times))
"""


def time_ours(cases, rounds):
    from tycho import _native

    times = []
    for _ in range(rounds):
        for case in cases:
            saved = {k: os.environ.pop(k) for k in list(os.environ) if k in SWITCHES}
            os.environ.update(case.get("environ", {}))
            req = copy.deepcopy(case["request"])
            t = time.perf_counter()
            _native.compile_request(req, ambassador=case.get("ambassador", False), deployment_uid="u",
                                    missing_claims=list(case.get("missing_pvcs") or []),
                                    secret_env=list((case.get("env_secret") or {}).items()))
            times.append(time.perf_counter() - t)
            for k in case.get("environ", {}):
                os.environ.pop(k, None)
            os.environ.update(saved)
    return times


def time_original(cases, rounds):
    py = orig_env.ensure_original_venv()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([py, "-c", ORIGINAL_TIMER, str(ROOT / "tests" / "support"), str(rounds)],
                              input=json.dumps(cases), capture_output=True, text=True, cwd=tmp,
                              env=orig_env.isolated_env(tmp), check=True)
    return json.loads(proc.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    from tycho import _native

    cases = []
    for c in CASES:
        if c.get("expect_error"):
            continue
        try:
            time_ours([c], 1)
            cases.append(c)
        except Exception:  # cases ours refuses on purpose (COMPATIBILITY.md)
            pass
    del _native
    ours = time_ours(cases, args.rounds * 20)
    orig = time_original(cases, args.rounds)
    m_ours, m_orig = statistics.mean(ours), statistics.mean(orig)
    print(f"systems: {len(cases)} cases; ours {len(ours)} compiles, original {len(orig)} compiles")
    print(f"{'':10} {'mean':>10} {'median':>10} {'p95':>10}")
    for name, t in (("original", orig), ("ours", ours)):
        p95 = sorted(t)[int(len(t) * 0.95) - 1]
        print(f"{name:10} {statistics.mean(t) * 1e3:9.3f}ms {statistics.median(t) * 1e3:9.3f}ms {p95 * 1e3:9.3f}ms")
    print(f"ratio (original / ours, mean per system): {m_orig / m_ours:.0f}x")
    print(f"ratio (original / ours, median per system): {statistics.median(orig) / statistics.median(ours):.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
