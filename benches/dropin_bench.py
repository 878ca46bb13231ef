"""Drop-in path vs native compile, same inputs, one run.

For every compose file (examples/, and the HeLx corpus when TYCHO_HELX_CORPUS names its
helx-apps folder, or ../shared/corpus/helx-apps beside the clone exists) both paths build every object
of the system: the drop-in path through the Python surface (``System.parse`` then
``system.render`` of pod.yaml, service.yaml per service and the NetworkPolicy), the
native path through ``tycho._native.compile_request``. Prints the mean time per system
of each and the ratio (drop-in / native).

    python benches/dropin_bench.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import yaml
from tycho import _native
from tycho.config import Config
from tycho.model import System

ROOT = Path(__file__).resolve().parent.parent
PRINCIPAL = {"username": "jdoe", "access_token": "tok", "refresh_token": "ref", "host": "h.example.org"}


def composes(folder: Path) -> list[tuple[str, dict]]:
    out = []
    for path in sorted(folder.glob("*/docker-compose.yaml")):
        out.append((path.parent.name, yaml.safe_load(path.read_text())))
    return out


def services_of(compose: dict) -> dict:
    out = {}
    for name, svc in (compose.get("services") or {}).items():
        if svc.get("ports"):
            out[name] = {"port": str(svc["ports"][-1]).rsplit(":", 1)[-1], "clients": []}
    return out


def dropin(config: Config, name: str, compose: dict, services: dict) -> int:
    system = System.parse(config, name, json.dumps(PRINCIPAL), compose, "default", {}, services)
    docs = list(system.render("pod.yaml"))
    for service in system.services.values():
        docs += system.render("service.yaml", context={"service": service})
    if system.requires_network_policy():
        docs += system.render("policy/tycho-default-netpolicy.yaml")
    return len(docs)


def native(name: str, compose: dict, services: dict) -> int:
    request = {"name": name, "principal": json.dumps(PRINCIPAL), "serviceaccount": "default",
               "env": {}, "system": compose, "services": services}
    return len(_native.compile_request(request, deployment_uid="u"))


def compilable(cases: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """The cases the core compiles without their settings (.env) file."""
    out = []
    for name, compose in cases:
        try:
            native(name, compose, services_of(compose))
        except Exception:
            continue
        out.append((name, compose))
    return out


def measure(cases: list[tuple[str, dict]], rounds: int) -> tuple[float, float]:
    config = Config()
    ours, base = [], []
    for _ in range(rounds):
        for name, compose in cases:
            services = services_of(compose)
            t = time.perf_counter()
            dropin(config, name, compose, services)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            native(name, compose, services)
            base.append(time.perf_counter() - t)
    return statistics.mean(ours), statistics.mean(base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("DEV_PHASE", "prod")
    sets = [("examples", composes(ROOT / "examples"))]
    corpus = Path(os.environ.get("TYCHO_HELX_CORPUS") or Path(__file__).resolve().parents[2] / "shared" / "corpus" / "helx-apps") / "app-specs"
    if corpus.is_dir():
        sets.append(("helx-apps", composes(corpus)))
    for label, cases in sets:
        cases = compilable(cases)
        measure(cases, 1)  # warm up: templates, schema, allocator
        dropin_s, native_s = measure(cases, args.rounds)
        print(f"{label:10} {len(cases):3} systems  drop-in {dropin_s * 1e6:7.0f} µs  "
              f"native {native_s * 1e6:7.0f} µs  ratio {dropin_s / native_s:.2f}x")


if __name__ == "__main__":
    main()
