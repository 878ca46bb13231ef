"""Compile cost of large requests (issue 9): many settings, many services.

    python benches/hostile_bench.py [--settings 20000] [--services 5000] [--rounds 3]

Prints the best wall time of each compile; not a timed test. The services cap
(TYCHO_MAX_SERVICES, 64 by default) is raised to --services for the run.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from tycho import _native


def request(settings: int, services: int) -> dict:
    env = {f"s{i}": "{{1}}" for i in range(settings)}
    compose = {
        f"svc{i}": {"image": "nginx:1.27", "environment": [f"A=v{i}"], "ports": ["80"]} for i in range(services)
    }
    return {
        "name": "bench",
        "principal": json.dumps({"username": "jdoe"}),
        "env": env,
        "system": {"services": compose},
        "services": {},
    }


def best(req: dict, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        _native.compile_request(req)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--settings", type=int, default=20000)
    ap.add_argument("--services", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    # Read by the model at each compile.
    os.environ["TYCHO_MAX_SERVICES"] = str(max(a.services, 64))
    print(f"{a.settings} settings of {{{{1}}}}: {best(request(a.settings, 1), a.rounds) * 1000:.0f} ms")
    print(f"{a.services} services: {best(request(0, a.services), a.rounds) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
