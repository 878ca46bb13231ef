"""Compile-time benchmark: ours vs the original tycho-api 1.17.3, same inputs, one run.

Two sets of start requests, each compiled by both implementations in the same run:

- ``parity``: every valid parity case (tests/support/cases.py);
- ``helx``: the HeLx app catalogue (``TYCHO_HELX_CORPUS``, else ``../shared/corpus/helx-apps``
  beside the clone; the set is left out, and says so, when it is absent): every app spec
  compose file as the registry context would send it, its settings being the registry's
  ``settings`` and the app's ``.env``.

Both implementations parse the start request and render every object of the system
(Deployment, NetworkPolicy, Services): ours through tycho._native.compile_request, the
original through System.parse and KubernetesCompute.start on an in-memory stand-in of the
cluster (tests/support/oracle.py). Prints the mean and median time per system of each and
the ratios.

    python benches/compile_bench.py [--rounds N] [--set parity|helx|all]
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
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


PRINCIPAL = {"username": "jdoe", "access_token": "tok", "refresh_token": "ref", "host": "h.example.org"}


def helx_cases() -> list[dict]:
    """The HeLx catalogue's apps as start requests (empty when the corpus is absent)."""
    import yaml

    corpus = Path(os.environ.get("TYCHO_HELX_CORPUS") or ROOT.parent / "shared" / "corpus" / "helx-apps")
    registry = corpus / "app-registry.yaml"
    if not registry.is_file():
        print(f"HeLx corpus not found at {corpus} (set TYCHO_HELX_CORPUS): the helx set is left out",
              file=sys.stderr)
        return []
    settings = {k: v for k, v in (yaml.safe_load(registry.read_text()).get("settings") or {}).items()
                if isinstance(v, str) and "{{" not in v}
    cases = []
    for path in sorted((corpus / "app-specs").glob("*/docker-compose.yaml")):
        compose = yaml.safe_load(path.read_text())
        env = dict(settings)
        dotenv = path.parent / ".env"
        if dotenv.is_file():
            for line in dotenv.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep and key.strip() and not key.lstrip().startswith("#"):
                    env[key.strip()] = value.strip()
        services = {}
        for name, svc in (compose.get("services") or {}).items():
            if (svc or {}).get("ports"):
                services[name] = {"port": str(svc["ports"][-1]).rsplit(":", 1)[-1], "clients": []}
        request = {"name": path.parent.name, "principal": json.dumps(PRINCIPAL), "serviceaccount": "default",
                   "env": env, "system": compose, "services": services}
        cases.append({"name": path.parent.name, "request": request, "environ": {"DEV_PHASE": "prod"}})
    return cases


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


def compilable(candidates):
    """The cases ours compiles (ours refuses some on purpose: COMPATIBILITY.md)."""
    cases = []
    for c in candidates:
        if c.get("expect_error"):
            continue
        try:
            time_ours([c], 1)
            cases.append(c)
        except Exception:
            pass
    return cases


def compare(label, cases, rounds):
    ours = time_ours(cases, rounds * 20)
    orig = time_original(cases, rounds)
    m_ours, m_orig = statistics.mean(ours), statistics.mean(orig)
    print(f"== {label}: {len(cases)} systems; ours {len(ours)} compiles, original {len(orig)} compiles")
    print(f"{'':10} {'mean':>10} {'median':>10} {'p95':>10}")
    for name, t in (("original", orig), ("ours", ours)):
        p95 = sorted(t)[int(len(t) * 0.95) - 1]
        print(f"{name:10} {statistics.mean(t) * 1e3:9.3f}ms {statistics.median(t) * 1e3:9.3f}ms {p95 * 1e3:9.3f}ms")
    print(f"ratio (original / ours, mean per system): {m_orig / m_ours:.0f}x")
    print(f"ratio (original / ours, median per system): {statistics.median(orig) / statistics.median(ours):.0f}x")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--set", choices=("parity", "helx", "all"), default="all")
    args = ap.parse_args()
    logging.disable(logging.CRITICAL)  # as the original's timer does: no log output timed
    sets = []
    if args.set in ("parity", "all"):
        sets.append(("parity cases", compilable(CASES)))
    if args.set in ("helx", "all"):
        helx = compilable(helx_cases())
        if helx:
            sets.append(("HeLx catalogue", helx))
    for label, cases in sets:
        compare(label, cases, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
