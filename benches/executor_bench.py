"""Executor benchmark: ours vs the original tycho-api 1.17.3 against the emulated
Kubernetes API server (tests/kube-emulator), same inputs, one run. Not a test.

1. start, status(guid) and delete of one system, each timed (wall clock, in the calling
   process) with ``--latency`` ms (default 20) added by the emulator to every API
   request; API round trips counted from the emulator's request log. The store is
   emptied and the fixtures (the ambassador Service, claims, ...) made again before each
   iteration; one warm-up iteration is not counted. The original runs in its own
   virtualenv through tests/support/exec_oracle.py (the driver ours runs through too),
   with its 3 s sleep per Service outside Ambassador patched out; one row shows it as
   shipped (sleep kept) on a LoadBalancer start.
3. The watch cache (ours only; rows 1 and 2 run ours with it off, ``TYCHO_KUBE_CACHE=off``):
   start at ``--latency`` with the cache warm (round trips and wall time), status with
   1,000 and 10,000 systems from memory (API requests per call, p50 beside the same call
   with the cache off), and the resident memory a process's cache of 10,000 systems costs
   (a fresh interpreter: RSS before the first operation and once the cache has listed).
2. status with 1,000 and 10,000 systems in the namespace: the store is filled by POSTing
   tycho-labelled Deployments and their Services straight to the emulator (concurrently,
   no latency); then ``status(username="alice")`` (10 of the systems) and ``status()``
   (all), with the same added latency.

    python benches/executor_bench.py [--iterations N] [--latency MS] [--sizes 1000,10000]
                                     [--repeat N] [--json OUT]

Run it with the interpreter that has ours installed (e.g. ``. .venv/bin/activate``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

import exec_oracle  # noqa: E402
import orig_env  # noqa: E402
from cases import CASES  # noqa: E402
from kube_emulator import Emulator  # noqa: E402

NAMESPACE = "tycho-bench"


def _case(base, **over):
    case = copy.deepcopy(next(c for c in CASES if c["name"] == base))
    case.update(over)
    return case


SCENARIOS = [
    ("jupyter-ds, Ambassador, 1 Service", _case("jupyter-ds-ambassador-prod")),
    ("cloudtop, Ambassador, 3 containers, 2 Services", _case("multi-container-probes-two-services")),
    ("jupyter-ds, LoadBalancer, claims + env Secret",
     _case("pvc-volume-missing-claim", ambassador=False, env_secret={"API_KEY": "k"})),
]
AS_SHIPPED = ("jupyter-ds, LoadBalancer, original as shipped (3 s sleep)", _case("jupyter-ds-loadbalancer"))


class Original:
    """Runs exec_oracle.py in the original's virtualenv."""

    def __init__(self, emu, kubeconfig, home):
        self.python = orig_env.ensure_original_venv()
        self.emu, self.kubeconfig, self.home = emu, kubeconfig, home

    def run(self, **spec):
        spec = dict(spec, emulator_url=self.emu.url, namespace=NAMESPACE, kubeconfig=self.kubeconfig)
        env = orig_env.isolated_env(self.home, {"KUBECONFIG": self.kubeconfig, "NAMESPACE": NAMESPACE})
        proc = subprocess.run([self.python, exec_oracle.__file__], input=json.dumps(spec), capture_output=True,
                              text=True, cwd=self.home, env=env, timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"exec_oracle.py failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return json.loads(proc.stdout)


def bare_lists(url, selector, kinds, repeat):
    """Wall time of plain urllib GETs of the label-selected lists (concurrently when
    several): the emulator's own share of a status call, with its latency."""
    paths = {"Deployment": f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments",
             "Service": f"/api/v1/namespaces/{NAMESPACE}/services"}
    query = "?labelSelector=" + urllib.parse.quote(selector)

    def get(kind):
        with urllib.request.urlopen(url + paths[kind] + query, timeout=600) as resp:
            return len(json.loads(resp.read())["items"])

    times = []
    with ThreadPoolExecutor(len(kinds)) as pool:
        for _ in range(repeat):
            t0 = time.perf_counter()
            list(pool.map(get, kinds))
            times.append(time.perf_counter() - t0)
    return times


def api_requests(emu):
    """The emulator's request log without watches (the cache's own long-lived requests)."""
    return [r for r in emu.requests() if "watch=" not in (r.get("query") or "")]


def cached_env(kubeconfig, on=True):
    return {"KUBECONFIG": kubeconfig, "NAMESPACE": NAMESPACE, "TYCHO_KUBE_CACHE": "on" if on else "off"}


def warm_status(emu, compute, bound=120.0):
    """Calls status until one makes no API request (the cache has listed)."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        emu.clear_requests()
        compute.status()
        if not api_requests(emu):
            return
        time.sleep(0.05)
    raise RuntimeError("the watch cache did not warm up")


def bench_status_cache(emu, kubeconfig, repeat):
    """status(username="alice") and status() with the cache warm and off: p50 and requests."""
    from tycho.core import Tycho

    out = {}
    for on in (True, False):
        with exec_oracle.case_environ(cached_env(kubeconfig, on), kubeconfig, NAMESPACE):
            compute = Tycho().get_compute()
            if on:
                warm_status(emu, compute)
            for label, call in (("by_user", lambda c=compute: c.status(username="alice")),
                                ("all", lambda c=compute: c.status())):
                times, made = [], []
                for _ in range(repeat):
                    emu.clear_requests()
                    t0 = time.perf_counter()
                    call()
                    times.append(time.perf_counter() - t0)
                    made.append(len(api_requests(emu)))
                out.setdefault(label, {})["cache" if on else "off"] = {"seconds": times, "requests": made}
    return out


def bench_start_cache(emu, kubeconfig, iterations, latency_ms):
    """Starts of one case with the cache warm and off: requests, round trips, wall time."""
    from tycho.core import Tycho

    case = SCENARIOS[0][1]
    out = {}
    for name, on, secrets in (("off", False, True), ("cache", True, True), ("cache-secrets", True, False)):
        env = dict(case.get("environ") or {}, **cached_env(kubeconfig, on))
        if not secrets:
            env["TYCHO_KUBE_CACHE_SECRETS"] = "off"
        with exec_oracle.case_environ(env, kubeconfig, NAMESPACE):
            t = Tycho()
            compute = t.get_compute()
            emu.reset()
            exec_oracle.create_fixtures(emu.url, NAMESPACE, case)
            times, made, rounds = [], [], []
            for i in range(iterations + 2):  # two warm-up starts: the named watches list
                system = t.parse(copy.deepcopy(case["request"]))
                emu.latency(latency_ms)
                emu.clear_requests()
                t0 = time.perf_counter()
                compute.start(system)
                elapsed = time.perf_counter() - t0
                emu.latency(0)
                log = api_requests(emu)
                if i >= 2:
                    times.append(elapsed)
                    made.append(len(log))
                    # a round trip: requests made together (same method and stage)
                    rounds.append(len({(r["method"], "deployments" in r["path"]) for r in log}))
                if on and i == 0:
                    warm_status(emu, compute)
            out[name] = {"seconds": times, "requests": made, "round_trips": rounds}
    return out


RSS_PROBE = r"""
import json, os, sys, time, urllib.request
url, size = sys.argv[1], int(sys.argv[2])
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
def control(method, path):
    req = urllib.request.Request(url + "/__emulator" + path, method=method)
    with urllib.request.urlopen(req, timeout=60) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None
from tycho.core import Tycho
compute = Tycho().get_compute()
compute.status(username="nobody")  # the runtime, the client, the watches started
before = rss()
deadline = time.monotonic() + 600
while time.monotonic() < deadline:
    control("DELETE", "/requests")
    compute.status(username="nobody")
    made = [r for r in control("GET", "/requests")["requests"] if "watch=" not in (r.get("query") or "")]
    if not made:
        break
    time.sleep(0.2)
after = rss()  # before any rows are built in Python
rows = len(compute.status())
print(json.dumps({"before": before, "after": after, "rows": rows}))
"""


def bench_cache_rss(emu, kubeconfig, size):
    env = dict(os.environ, **cached_env(kubeconfig, True))
    proc = subprocess.run([sys.executable, "-c", RSS_PROBE, emu.url, str(size)], env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout)


def p50(seconds):
    return statistics.median(seconds) * 1e3


def ms(seconds):
    return statistics.mean(seconds) * 1e3


def fmt_ms(v):
    return f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"


def requests_of(counts):
    lo, hi = min(counts), max(counts)
    return str(lo) if lo == hi else f"{lo}-{hi}"


def table(headers, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(f"{h:<{w}}" if i == 0 else f"{h:>{w}}" for i, (h, w) in enumerate(zip(headers, widths)))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(f"{str(c):<{w}}" if i == 0 else f"{str(c):>{w}}" for i, (c, w) in enumerate(zip(r, widths))))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=10, help="start/status/delete rounds per scenario")
    ap.add_argument("--latency", type=int, default=20, help="ms added to every API request")
    ap.add_argument("--sizes", default="1000,10000", help="systems in the namespace for the status runs")
    ap.add_argument("--repeat", type=int, default=3, help="status calls per size")
    ap.add_argument("--shipped-iterations", type=int, default=2, help="rounds of the as-shipped row (0: skip)")
    ap.add_argument("--json", help="write the raw measurements here")
    args = ap.parse_args()

    import tycho._native

    if not hasattr(tycho._native, "kube_start"):
        print("this build of tycho has no Kubernetes executor (tycho._native.kube_start)", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",") if s]
    raw = {"latency_ms": args.latency, "iterations": args.iterations, "ops": {}, "status_scale": {}}
    print(f"executor benchmark: {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, emulator latency {args.latency} ms per API request, "
          f"{args.iterations} iterations per scenario")

    with tempfile.TemporaryDirectory(prefix="tycho-exec-bench-") as tmp, Emulator() as emu:
        kubeconfig = emu.write_kubeconfig(os.path.join(tmp, "kubeconfig"), namespace=NAMESPACE)
        home = os.path.join(tmp, "home")
        os.makedirs(home)
        original = Original(emu, kubeconfig, home)

        # ---------------------------------------------------------------- start/status/delete
        rows = []
        scenarios = [(label, case, args.iterations, False) for label, case in SCENARIOS]
        if args.shipped_iterations:
            scenarios.append((*AS_SHIPPED, args.shipped_iterations, True))
        for label, case, iterations, keep_sleep in scenarios:
            warmup = 0 if keep_sleep else 1
            theirs = original.run(mode="bench", case=case, iterations=iterations, latency_ms=args.latency,
                                  keep_sleep=keep_sleep, warmup=warmup)
            ours = exec_oracle.bench_ops(case, emu, NAMESPACE, kubeconfig, iterations, args.latency, warmup)
            emu.reset()
            raw["ops"][label] = {"original": theirs, "ours": ours}
            for op in ("start", "status", "delete"):
                a, b = ms(theirs["seconds"][op]), ms(ours["seconds"][op])
                rows.append([f"{label}: {op}" if op == "start" else f"{'':>{len(label)}}  {op}",
                             requests_of(theirs["requests"][op]), requests_of(ours["requests"][op]),
                             fmt_ms(a), fmt_ms(b), f"{a / b:.1f}x"])
        print()
        table(["operation", "API requests orig", "ours", "ms orig (mean)", "ms ours (mean)", "orig/ours"], rows)

        # ---------------------------------------------------------------- status at scale
        rows = []
        cache_rows = []
        filled = 0
        for size in sizes:
            emu.latency(0)
            t0 = time.perf_counter()
            exec_oracle.populate(emu.url, NAMESPACE, size - filled, start=filled)
            fill_s = time.perf_counter() - t0
            filled = size
            emu.latency(args.latency)
            theirs = original.run(mode="bench_status", username="alice", repeat=args.repeat)
            ours = exec_oracle.bench_status(emu, NAMESPACE, kubeconfig, "alice", args.repeat)
            bare = {call: {"deployments": bare_lists(emu.url, sel, ["Deployment"], args.repeat),
                           "deployments+services": bare_lists(emu.url, sel, ["Deployment", "Service"], args.repeat)}
                    for call, sel in (("by_user", "username=alice"), ("all", "executor=tycho"))}
            emu.latency(0)
            raw["status_scale"][size] = {"original": theirs, "ours": ours, "bare_lists": bare, "fill_seconds": fill_s}
            for call, label in (("by_user", 'status(username="alice")'), ("all", "status()")):
                a, b = theirs[call], ours[call]
                assert a["rows"] == b["rows"], (size, call, a["rows"], b["rows"])
                ta, tb = ms(a["seconds"]), ms(b["seconds"])
                rows.append([f"{size:,} systems: {label}", a["rows"], a["requests"], b["requests"], fmt_ms(ta),
                             fmt_ms(tb), f"{ta / tb:.1f}x", fmt_ms(ms(bare[call]["deployments"])),
                             fmt_ms(ms(bare[call]["deployments+services"]))])
            print(f"\n(filled {size:,} Deployments + Services in {fill_s:.1f} s)", end="")
            cache = bench_status_cache(emu, kubeconfig, max(args.repeat, 5))
            raw["status_scale"][size]["cache"] = cache
            for call, label in (("by_user", 'status(username="alice")'), ("all", "status()")):
                on, off = cache[call]["cache"], cache[call]["off"]
                cache_rows.append([f"{size:,} systems: {label}", requests_of(off["requests"]),
                                   requests_of(on["requests"]), fmt_ms(p50(off["seconds"])),
                                   fmt_ms(p50(on["seconds"])), f"{p50(off['seconds']) / p50(on['seconds']):.1f}x"])
            if size == 10000:
                rss = bench_cache_rss(emu, kubeconfig, size)
                raw["cache_rss"] = rss
        print("\n")
        table(["status", "rows", "API requests orig", "ours", "ms orig (mean)", "ms ours (mean)", "orig/ours",
               "bare list: deps", "deps+svcs"], rows)
        print()
        table(["status, ours (latency %d ms)" % args.latency, "API requests, cache off", "cache warm",
               "p50 ms, off", "p50 ms, warm", "off/warm"], cache_rows)
        if "cache_rss" in raw:
            rss = raw["cache_rss"]
            print(f"\nwatch cache of {rss['rows']:,} systems: RSS {rss['before'] / 2**20:,.0f} MiB before, "
                  f"{rss['after'] / 2**20:,.0f} MiB listed: {(rss['after'] - rss['before']) / 2**20:,.0f} MiB")

        emu.reset()
        start_cache = bench_start_cache(emu, kubeconfig, args.iterations, args.latency)
        raw["start_cache"] = start_cache
        print()
        table([f"start, ours ({SCENARIOS[0][0]}, latency {args.latency} ms)", "API requests", "round trips",
               "ms (p50)"],
              [[name, requests_of(v["requests"]), requests_of(v["round_trips"]), fmt_ms(p50(v["seconds"]))]
               for name, v in (("cache off", start_cache["off"]), ("cache warm", start_cache["cache"]),
                               ("cache warm, TYCHO_KUBE_CACHE_SECRETS=off", start_cache["cache-secrets"]))])

    print("\nNotes: times are wall clock around each call in its own process (the original's "
          "interpreter start and imports are not counted); the emulator's own time to select "
          "and serialise objects is in both columns. Ours also lists the systems' Services "
          "(for ip/port), concurrently with the Deployments. 'bare list' is the same "
          "label-selected list(s) fetched with plain urllib (the emulator's share: the "
          "original needs the Deployments, ours Deployments + Services).")
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
