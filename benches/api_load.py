"""Load benchmark of the REST API: ours (`tycho api`) and the original tycho-api 1.17.3
Flask app side by side, against the same emulated Kubernetes API server.

    python benches/api_load.py [--requests 400] [--start-requests 80] [--concurrency 8]

For each server and each endpoint (/system/status, then /system/start) a second process
(this script with --load) sends a bounded number of requests from a thread pool over
loopback and reports requests per second and p50/p99 latency; a table with the ratios
closes the run. Everything runs on 127.0.0.1; nothing outside this machine is contacted.

Setup: the emulator is built by tests/support/kube_emulator.py; the original runs from the
virtualenv of tests/support/orig_env.py (ensure_original_venv()) with the emulator's
kubeconfig. Before the /system/start runs an "ambassador" Service is created, so the
original does not sleep 3 s per service (it does outside Ambassador) and both render
the same variant; the store is reset between runs; the status runs list 10 systems. A
last row sends the two lists one status makes straight to the emulator: the ceiling any
server can reach here.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

COMPOSE = {
    "version": "3",
    "services": {
        "web": {
            "image": "nginx:1.27",
            "ports": ["8080:80"],
            "deploy": {"resources": {"limits": {"cpus": "0.5", "memory": "256M"}}},
        }
    },
}


LIST_PATHS = (
    "/apis/apps/v1/namespaces/default/deployments?labelSelector=executor%3Dtycho",
    "/api/v1/namespaces/default/services?labelSelector=executor%3Dtycho",
)


def start_body(i: int) -> dict:
    return {
        "name": "web",
        "principal": json.dumps({"username": f"user{i % 20}"}),
        "serviceaccount": "default",
        "env": {},
        "system": COMPOSE,
        "services": {"web": {"port": "80"}},
    }


# ------------------------------------------------------------------ load process


def load(url: str, path: str, count: int, concurrency: int, kind: str) -> dict:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    local = threading.local()
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def conn():
        c = getattr(local, "conn", None)
        if c is None:
            c = local.conn = http.client.HTTPConnection(host, int(port), timeout=120)
        return c

    def one(i: int):
        nonlocal errors
        if kind == "lists":
            # The two lists one status request makes, straight to the API server.
            started = time.perf_counter()
            ok = True
            for list_path in LIST_PATHS:
                c = conn()
                c.request("GET", list_path)
                resp = c.getresponse()
                resp.read()
                ok = ok and resp.status == 200
            with lock:
                latencies.append(time.perf_counter() - started)
                errors += 0 if ok else 1
            return
        body = json.dumps(start_body(i) if kind == "start" else {}).encode()
        started = time.perf_counter()
        ok = False
        for _attempt in range(2):
            c = conn()
            try:
                c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                resp = c.getresponse()
                data = resp.read()
                ok = resp.status == 200 and json.loads(data).get("status") == "success"
                if resp.getheader("Connection", "").lower() == "close" or resp.version == 10:
                    c.close()
                    local.conn = None
                break
            except (http.client.HTTPException, OSError):
                c.close()
                local.conn = None
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)
            if not ok:
                errors += 1

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(count)))
    wall = time.perf_counter() - began
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(round(p / 100 * (len(latencies) - 1))))] * 1000

    return {"requests": count, "errors": errors, "rps": count / wall, "p50": pct(50), "p99": pct(99),
            "mean": statistics.mean(latencies) * 1000}


# ------------------------------------------------------------------ servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url + "/system/status", data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10):
                return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def start_ours(kubeconfig: str, log) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, KUBECONFIG=kubeconfig, NAMESPACE="default")
    env.pop("TYCHO_API_TOKEN", None)
    # The access log is on (INFO), as in production.
    proc = subprocess.Popen([sys.executable, "-m", "tycho", "api", "-p", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_http(url)
    return proc, url


ORIGINAL_MAIN = """
import logging, sys
logging.basicConfig(level=logging.WARNING)
from tycho.api import app
app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True, debug=False)
"""


def start_original(kubeconfig: str, log) -> tuple[subprocess.Popen, str]:
    from orig_env import ensure_original_venv

    python = ensure_original_venv()
    port = free_port()
    env = dict(os.environ, KUBECONFIG=kubeconfig, NAMESPACE="default")
    env.pop("KUBERNETES_SERVICE_HOST", None)
    proc = subprocess.Popen([python, "-c", ORIGINAL_MAIN, str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=tempfile.gettempdir())
    url = f"http://127.0.0.1:{port}"
    wait_http(url)
    return proc, url


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_load(url: str, path: str, count: int, concurrency: int, kind: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--load", url, "--path", path, "--count", str(count),
                          "--concurrency", str(concurrency), "--kind", kind],
                         capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout)


def seed(emu, url: str, n: int) -> None:
    for i in range(n):
        req = urllib.request.Request(url + "/system/start", data=json.dumps(start_body(i)).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert json.loads(resp.read())["status"] == "success"


def ambassador(emu) -> None:
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ambassador"},
            "spec": {"ports": [{"port": 80}], "selector": {"app": "ambassador"}}}
    req = urllib.request.Request(emu.url + "/api/v1/namespaces/default/services", data=json.dumps(body).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=30).read()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=400, help="status requests per server")
    ap.add_argument("--start-requests", type=int, default=80, help="start requests per server")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--only", choices=["ours", "original"], help="benchmark one server")
    ap.add_argument("--load", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--kind", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.load:
        print(json.dumps(load(args.load, args.path, args.count, args.concurrency, args.kind)))
        return

    from kube_emulator import Emulator

    servers = [s for s in ("original", "ours") if args.only in (None, s)]
    results: dict[tuple[str, str], dict] = {}
    with tempfile.TemporaryDirectory() as tmp, Emulator() as emu:
        kubeconfig = emu.write_kubeconfig(os.path.join(tmp, "kubeconfig"))
        for name in servers:
            log = open(os.path.join(tmp, f"{name}.log"), "wb")
            proc, url = (start_ours if name == "ours" else start_original)(kubeconfig, log)
            try:
                emu.reset()
                seed(emu, url, 10)
                print(f"{name}: /system/status x {args.requests} ...", file=sys.stderr)
                results[(name, "/system/status")] = run_load(url, "/system/status", args.requests,
                                                             args.concurrency, "status")
                if name == servers[-1]:
                    print(f"emulated API server alone: 2 lists x {args.requests} ...", file=sys.stderr)
                    results[("emulator", "/system/status")] = run_load(emu.url, "", args.requests,
                                                                       args.concurrency, "lists")
                emu.reset()
                ambassador(emu)
                print(f"{name}: /system/start x {args.start_requests} ...", file=sys.stderr)
                results[(name, "/system/start")] = run_load(url, "/system/start", args.start_requests,
                                                            args.concurrency, "start")
            finally:
                stop(proc)
                log.close()
            text = Path(tmp, f"{name}.log").read_text(errors="replace")
            if name == "ours" and re.search(r" 5\d\d \d", text):
                print("warning: 5xx answers in our access log", file=sys.stderr)

    print(f"\nconcurrency {args.concurrency}, loopback, emulated Kubernetes API server, {os.cpu_count()} cores\n")
    header = f"{'endpoint':<16} {'server':<22} {'requests':>8} {'errors':>6} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9}"
    print(header)
    print("-" * len(header))
    labels = {"original": "tycho-api 1.17.3 (Flask)", "ours": "ours (axum)", "emulator": "API server alone"}
    for endpoint in ("/system/status", "/system/start"):
        for name in servers + ["emulator"]:
            if (name, endpoint) not in results:
                continue
            r = results[(name, endpoint)]
            label = labels[name]
            print(f"{endpoint:<16} {label:<22} {r['requests']:>8} {r['errors']:>6} {r['rps']:>9.1f} "
                  f"{r['p50']:>9.2f} {r['p99']:>9.2f}")
        if len(servers) == 2:
            o, u = results[("original", endpoint)], results[("ours", endpoint)]
            print(f"{endpoint:<16} {'ratio ours/original':<22} {'':>8} {'':>6} {u['rps'] / o['rps']:>8.1f}x "
                  f"{o['p50'] / u['p50']:>8.1f}x {o['p99'] / u['p99']:>8.1f}x")
        print()
    if len(servers) == 2:
        print("ratio: req/s ours ÷ original; latency columns original ÷ ours (higher is better for ours)")
    print("API server alone: the two lists a status request makes (deployments, services by label),")
    print("sent straight to the emulator by the same load process: the ceiling for /system/status.")


if __name__ == "__main__":
    main()
