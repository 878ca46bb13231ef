"""In-process ``TychoContext.start``: ours vs the original tycho-api 1.17.3, one run.

Both build the start request of HeLx apps the way appstore does (``TychoContext(product=
"common")``, an app entry whose spec and ``.env`` are served from 127.0.0.1, a principal,
a resource request, the host) and stop at the named ``mock.patch`` point ``_start``
(stubbed: it answers a running system at once, with no cluster and no tycho API
server). What is timed is everything before it: the registry entry, the spec and
settings (fetched once, then from each side's HTTP cache), the compose templating and
the request. Each side runs in its own interpreter (the original from
``TYCHO_ORIG_VENV``); prints the mean and median per start and the ratio.

    python benches/context_start_bench.py [--rounds N] [--apps a,b,...]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

import orig_env  # noqa: E402

TIMER = r"""
import json, logging, sys, time
logging.disable(logging.CRITICAL)
from tycho.client import TychoSystem
from tycho.context import Principal, TychoContext

args = json.load(sys.stdin)
ctx = TychoContext(product="common")

def _start(request):
    return TychoSystem(status="success", message="ok", result={
        "name": request["name"], "conn_string": "", "sid": "0123456789abcdef0123456789abcdef",
        "containers": {k: {"ip_address": None, "port-1": int(v["port"])} for k, v in request["services"].items()}})

ctx._start = _start
principal = Principal("jdoe", "tok", "ref")
resources = {"deploy": {"resources": {"limits": {"cpus": "2", "memory": "4G"},
                                      "reservations": {"cpus": "1", "memory": "2G"}}}}
for app in args["apps"]:
    ctx.apps[app["app_id"]] = app
times = []
for r in range(args["rounds"] + 1):
    for app in args["apps"]:
        t = time.perf_counter()
        ctx.start(principal, app["app_id"], resources, "h.example.org")
        if r:  # the first round fills the HTTP caches
            times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def app_entries(corpus: Path, names: list[str], base: str) -> list[dict]:
    """Registry entries of the apps, their spec served under ``base``."""
    return [{
        "name": name, "app_id": name, "description": "d", "details": "x", "docs": "https://d/",
        "spec": f"{base}{name}/docker-compose.yaml", "icon": "https://i/icon.png", "count": 1,
        "services": {name: port}, "securityContext": {"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100},
        "conn_string": "", "proxy-rewrite-rule": True, "gitea-integration": False,
    } for name, port in names]


def first_port(compose: Path) -> int:
    """The container port of the compose file's first `ports` entry (8080 when none)."""
    for line in compose.read_text().splitlines():
        text = line.strip().strip("-").strip().strip("'\"")
        if text[:1].isdigit() and ":" in text:
            return int(text.split(":")[-1].split("/")[0])
    return 8080


def run(py: str, apps: list[dict], rounds: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([py, "-c", TIMER], input=json.dumps({"apps": apps, "rounds": rounds}),
                              capture_output=True, text=True, cwd=tmp, env=orig_env.isolated_env(tmp), timeout=1800)
    if proc.returncode:
        raise SystemExit(f"{py}: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--apps", default="jupyter-ds,rstudio-server,webtop,filebrowser,nginx")
    args = ap.parse_args()
    corpus = Path(os.environ.get("TYCHO_HELX_CORPUS") or ROOT.parent / "shared" / "corpus" / "helx-apps")
    specs = corpus / "app-specs"
    if not specs.is_dir():
        raise SystemExit(f"HeLx corpus not found at {corpus} (TYCHO_HELX_CORPUS)")
    with tempfile.TemporaryDirectory() as site:
        names = []
        for name in args.apps.split(","):
            src = specs / name
            shutil.copytree(src, Path(site) / name)
            names.append((name, first_port(src / "docker-compose.yaml")))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=site))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            apps = app_entries(corpus, names, f"http://127.0.0.1:{server.server_port}/")
            ours = run(sys.executable, apps, args.rounds)
            orig = run(orig_env.ensure_original_venv(), apps, max(1, args.rounds // 4))
        finally:
            server.shutdown()
    print(f"apps: {len(apps)}; ours {len(ours)} starts, original {len(orig)} starts")
    print(f"{'':10} {'mean':>10} {'median':>10}")
    for name, t in (("original", orig), ("ours", ours)):
        print(f"{name:10} {statistics.mean(t) * 1e3:9.3f}ms {statistics.median(t) * 1e3:9.3f}ms")
    print(f"ratio (original / ours, mean per start): {statistics.mean(orig) / statistics.mean(ours):.2f}x")
    print(f"ratio (original / ours, median per start): {statistics.median(orig) / statistics.median(ours):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
