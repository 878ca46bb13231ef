"""Executor oracle: drive a tycho package's KubernetesCompute against the kube emulator.

The same driver runs both implementations with the same inputs:

* the ORIGINAL tycho-api 1.17.3, as a script inside its virtualenv (tests/support/orig_env.py)::

      python exec_oracle.py < input.json > output.json

  input: ``{"mode": "cases"|"bench", "emulator_url": "http://127.0.0.1:PORT",
  "namespace": "default", "kubeconfig": PATH, ...}`` (see ``main``);
* ours, imported in-process by tests/parity/test_executor_differential.py and
  benches/executor_bench.py (``drive_case``, ``bench_ops``).

Only the stdlib and tests/support/kube_emulator.py are imported at module level; ``tycho`` is
imported when a case runs, so whichever package is importable is the one driven.

What the script changes in the original (nothing else is patched):

* ``tycho.kube.sleep`` becomes a no-op. The original sleeps 3 s per Service of a start
  outside Ambassador (``get_service_ip_address``, once per app id per process) for a
  ``kubectl port-forward`` it no longer runs; the sleep sends nothing to the API server.
  The benchmark reports the shipped behaviour separately (``"keep_sleep": true``).
* A case with ``"netpolicy": "missing"`` (the default when services list clients)
  renders the NetworkPolicy template as nothing: the published wheel lacks
  ``policy/tycho-default-netpolicy.yaml``, so as shipped the original's start raises,
  and its rollback (``delete(system.name)``, which selects on the GUID label with the
  system *name*) leaves the Deployment behind. ``"netpolicy": "as-shipped"`` keeps that
  failure; ``"netpolicy": "supplied"`` gives the original :data:`NETPOLICY_TEMPLATE`
  (a plain-Jinja2 port of ours) through its own template override path
  (``config['tycho']['templates']['paths']``), so that its delete can be seen leaving
  the NetworkPolicy in the store.

Case keys (those of tests/support/cases.py, plus a few of this driver's):
``request``, ``environ``, ``ambassador`` (create a Service named ``ambassador``, or
``AMBASSADOR_SVC_NAME``), ``missing_pvcs`` (claims not created; every other
``pvc://`` claim of the request is created as a PVC), ``env_secret`` (data of the
``<app>-env`` Secret), ``loadbalancer_ip`` (ingress IP the emulator gives LoadBalancer
Services), ``modify`` (the modify request without its GUID), ``netpolicy``.

Output of ``drive_case``: a transcript whose every occurrence of the system GUID is
``<GUID>``: start/status/modify/delete results (or ``{"error", "stage"}``), the API
requests of start, status, modify and delete, and the emulator store after start,
after modify and after delete (volatile fields stripped: uid, resourceVersion,
timestamps, generation, managedFields, clusterIP, nodePort, condition times, pod IPs).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

# kube_emulator.py is a sibling in tests/support/ (on sys.path when run as a script;
# put there when imported from elsewhere).
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from kube_emulator import Emulator, strip_volatile_fields  # noqa: E402


def _load_sibling(name):
    key = f"_tycho_parity_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, os.path.join(HERE, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[key] = mod
    spec.loader.exec_module(mod)
    return mod


SWITCHES = tuple(_load_sibling("oracle").SWITCHES)
GUID_TOKEN = "<GUID>"
TIME_TOKEN = "<TIME>"
DEFAULT_MODIFY = {"labels": {"team": "blue"}, "cpu": "2", "memory": "3G"}
# The original's status formats creation_time f"{month}-{day}-{year} {h}:{m}:{s}".
CREATION_TIME = re.compile(r"([1-9]|1[0-2])-([1-9]|[12][0-9]|3[01])-20[0-9]{2} "
                           r"([0-9]|1[0-9]|2[0-3]):([0-9]|[1-5][0-9]):([0-9]|[1-5][0-9])")
NETPOLICY = "policy/tycho-default-netpolicy.yaml"
# Plain-Jinja2 port of templates/policy/tycho-default-netpolicy.yaml for the original's
# System (values pasted bare, as the original's templates do).
NETPOLICY_TEMPLATE = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ system.name }}-netpolicy
  labels:
    name: {{ system.name }}
    username: {{ system.username }}
    executor: tycho
    tycho-guid: {{ system.identifier }}
spec:
  podSelector:
    matchLabels:
      tycho-guid: {{ system.identifier }}
  policyTypes:
  - Ingress
  ingress:
  {%- for sname, service in system.services.items() %}
  {%- set container = (system.containers|selectattr("name", "equalto", sname)|list)[0] %}
  - {%- if service.clients %}
    from:
    {%- for cidr in service.clients %}
    - ipBlock:
        cidr: {{ cidr }}
    {%- endfor %}
    {%- endif %}
    ports:
    {%- for port in (container.ports if container.ports else [{"containerPort": service.port}]) %}
    - port: {{ port.containerPort }}
      protocol: TCP
    {%- endfor %}
  {%- endfor %}
"""

COLLECTIONS = {
    "Service": "/api/v1/namespaces/{ns}/services",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "PersistentVolumeClaim": "/api/v1/namespaces/{ns}/persistentvolumeclaims",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
}


# ------------------------------------------------------------------ emulator plumbing


def attach(url: str) -> Emulator:
    """An ``Emulator`` handle for a running emulator at ``url`` (control API only)."""
    emu = Emulator()
    emu.port = int(url.rsplit(":", 1)[1].strip("/"))
    return emu


def post(url: str, kind: str, namespace: str, obj: dict, timeout: float = 30) -> dict:
    req = urllib.request.Request(url + COLLECTIONS[kind].format(ns=namespace), data=json.dumps(obj).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def claims_of(case) -> list:
    """Claims named by ``pvc://`` volumes of the request (the default stdnfs ones are
    exempt from the existence check on both sides and are not created)."""
    text = json.dumps(case["request"].get("system"))
    return sorted(set(re.findall(r"pvc://([A-Za-z0-9][A-Za-z0-9.-]*)", text)))


def create_fixtures(url: str, namespace: str, case: dict) -> list:
    """What the cluster holds before the start: ambassador Service, PVCs, the
    ``<app>-env`` Secret. Returns [(kind, name)]."""
    made = []
    environ = case.get("environ") or {}
    if case.get("ambassador"):
        name = environ.get("AMBASSADOR_SVC_NAME") or "ambassador"
        post(url, "Service", namespace, {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": {"service": "ambassador"}},
            "spec": {"type": "ClusterIP", "selector": {"service": "ambassador"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
        made.append(("Service", name))
    missing = set(case.get("missing_pvcs") or ())
    for claim in claims_of(case):
        if claim in missing:
            continue
        post(url, "PersistentVolumeClaim", namespace, {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim},
            "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}})
        made.append(("PersistentVolumeClaim", claim))
    if case.get("env_secret") is not None:
        name = f"{case['request']['name']}-env"
        data = {k: base64.b64encode(str(v).encode()).decode() for k, v in case["env_secret"].items()}
        post(url, "Secret", namespace, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                                        "type": "Opaque", "data": data})
        made.append(("Secret", name))
    return made


def store(emu: Emulator) -> list:
    """The emulator store, volatile fields stripped (condition times too)."""
    out = []
    for obj in emu.objects():
        obj = strip_volatile_fields(obj)
        for cond in (obj.get("status") or {}).get("conditions") or []:
            for key in ("lastTransitionTime", "lastUpdateTime", "lastProbeTime", "lastHeartbeatTime"):
                cond.pop(key, None)
        status = obj.get("status")
        if isinstance(status, dict):
            for key in ("startTime", "podIP", "podIPs", "hostIP", "hostIPs"):  # assigned by the emulator
                status.pop(key, None)
            for cs in status.get("containerStatuses") or []:
                cs.pop("state", None)
        out.append(obj)
    return out


def request_log(emu: Emulator) -> list:
    return [[r["method"], r["path"], r["query"]] for r in emu.requests()]


@contextlib.contextmanager
def case_environ(environ: dict | None, kubeconfig: str, namespace: str):
    """The case's switches (all others cleared), KUBECONFIG and NAMESPACE; restored after."""
    env = dict(environ or {}, KUBECONFIG=kubeconfig, NAMESPACE=namespace)
    # The cases create fixtures behind the executor's back and start at once: the
    # API-server path (the watch cache has its own tests and benchmark rows).
    env.setdefault("TYCHO_KUBE_CACHE", "off")
    with _load_sibling("oracle")._case_environ(env):
        yield


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def scrub(value, guid):
    """Replace the GUID everywhere; creation_time of status rows → <TIME> (format checked)."""
    text = json.dumps(value, default=str)
    if guid:
        text = text.replace(guid, GUID_TOKEN)
    out = json.loads(text)
    for key in ("status_before_ready", "status", "status_by_user", "status_all", "status_after_modify"):
        rows = out.get(key) if isinstance(out.get(key), list) else []
        for row in rows:
            if isinstance(row, dict) and "creation_time" in row:
                ct = row["creation_time"]
                row["creation_time"] = TIME_TOKEN if CREATION_TIME.fullmatch(str(ct)) else f"BAD:{ct}"
    return out


def _netpolicy_hook(system, mode, tmpdir):
    """The original's missing NetworkPolicy template (see the module docstring)."""
    if mode == "supplied":
        os.makedirs(os.path.join(tmpdir, "policy"), exist_ok=True)
        with open(os.path.join(tmpdir, NETPOLICY), "w") as f:
            f.write(NETPOLICY_TEMPLATE)
        system.config["tycho"]["templates"]["paths"] = [tmpdir]
        return
    if mode != "missing":
        return
    render = system.render

    def render_without_netpolicy(template, context={}):  # noqa: B006 - System.render's signature
        if template == NETPOLICY:
            try:
                return list(render(template, context))
            except ValueError:  # "No template ... found": the wheel lacks it
                return []
        return render(template, context)

    system.render = render_without_netpolicy


# ------------------------------------------------------------------ the differential run


def drive_case(case: dict, emu: Emulator, namespace: str, kubeconfig: str, original: bool = False) -> dict:
    """start → status → (deployment made ready) → status → modify → delete → delete,
    recording results, request logs and the store after start, modify and delete."""
    from tycho.core import Tycho

    emu.reset()
    if case.get("loadbalancer_ip"):
        emu.set_loadbalancer_ip(case["loadbalancer_ip"])
    out = {"name": case["name"], "fixtures": create_fixtures(emu.url, namespace, case)}
    guid = None
    stage = "parse"
    with case_environ(case.get("environ"), kubeconfig, namespace), tempfile.TemporaryDirectory() as tmpdir:
        try:
            t = Tycho()
            system = t.parse(copy.deepcopy(case["request"]))
            guid = system.identifier
            if original:
                clients = any(s.get("clients") for s in (case["request"].get("services") or {}).values())
                _netpolicy_hook(system, case.get("netpolicy", "missing" if clients else None), tmpdir)
            compute = t.get_compute()
            stage = "start"
            emu.clear_requests()
            out["start"] = compute.start(system)
            out["start_requests"] = request_log(emu)
            out["objects_after_start"] = store(emu)
            name = out["start"]["name"]

            stage = "status"
            emu.clear_requests()
            out["status_before_ready"] = compute.status(guid)
            out["status_requests"] = request_log(emu)
            emu.set_deployment_status(namespace, name, pods=True)
            out["status"] = compute.status(guid)
            out["status_by_user"] = compute.status(username=system.username)
            out["status_all"] = compute.status()

            stage = "modify"
            emu.clear_requests()
            out["modify"] = compute.modify(t.parse_modify(dict(case.get("modify") or DEFAULT_MODIFY,
                                                               **{"tycho-guid": guid})))
            out["modify_requests"] = request_log(emu)
            out["objects_after_modify"] = store(emu)
            out["status_after_modify"] = compute.status(guid)

            stage = "delete"
            emu.clear_requests()
            out["delete"] = compute.delete(guid)
            out["delete_requests"] = request_log(emu)
            out["objects_after_delete"] = store(emu)
            out["delete_again"] = compute.delete(guid)
        except Exception as exc:  # noqa: BLE001 - the transcript reports every failure
            out["error"] = _err(exc)
            out["stage"] = stage
            if type(exc).__name__ == "StartException" and exc.__context__ is not None:
                out["error_cause"] = _err(exc.__context__)
            out["objects_after_error"] = store(emu)
            out["requests_until_error"] = request_log(emu)
    return scrub(out, guid)


# ------------------------------------------------------------------ the benchmark


def bench_ops(case: dict, emu: Emulator, namespace: str, kubeconfig: str, iterations: int,
              latency_ms: int = 20, warmup: int = 1) -> dict:
    """Per iteration: start, status(guid), delete, each timed (wall clock) and its API
    requests counted from the emulator log. The store is reset before each iteration;
    latency applies to the timed calls only. The first ``warmup`` iterations are not kept."""
    from tycho.core import Tycho

    samples = {"start": [], "status": [], "delete": []}
    requests = {"start": [], "status": [], "delete": []}
    with case_environ(case.get("environ"), kubeconfig, namespace):
        t = Tycho()
        compute = t.get_compute()
        for iteration in range(warmup + iterations):
            if iteration == warmup:
                for kept in (samples, requests):
                    for values in kept.values():
                        values.clear()
            emu.reset()
            create_fixtures(emu.url, namespace, case)
            system = t.parse(copy.deepcopy(case["request"]))
            emu.latency(latency_ms)
            emu.clear_requests()
            for op, call in (("start", lambda s=system: compute.start(s)),
                             ("status", lambda s=system: compute.status(s.identifier)),
                             ("delete", lambda s=system: compute.delete(s.identifier))):
                t0 = time.perf_counter()
                call()
                samples[op].append(time.perf_counter() - t0)
                requests[op].append(len(emu.requests()))
                emu.clear_requests()
            emu.latency(0)
    return {"seconds": samples, "requests": requests}


def deployment_for(i: int, username: str, namespace: str) -> dict:
    """A Deployment as tycho would label it (for populating the store)."""
    guid = f"{i:032x}"
    name = f"app{i % 7}-{guid}"
    labels = {"tycho-guid": guid, "executor": "tycho", "username": username}
    pod_labels = dict(labels, name=name, **{"app-name": f"app{i % 7}", "original-app-name": f"app{i % 7}",
                                            "tycho-app-id": f"app{i % 7}"})
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"tycho-guid": guid, "username": username}},
            "template": {"metadata": {"labels": pod_labels}, "spec": {"containers": [{
                "name": f"app{i % 7}", "image": "nginx:1.25",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {"limits": {"cpu": "1", "memory": "2G"}, "requests": {"cpu": "1", "memory": "2G"}}}]}},
        },
    }


def service_for(i: int, username: str, namespace: str) -> dict:
    """The Service tycho would create beside ``deployment_for(i, ...)`` (no ownerReferences)."""
    dep = deployment_for(i, username, namespace)
    name, guid = dep["metadata"]["name"], dep["metadata"]["labels"]["tycho-guid"]
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"name": name, "tycho-guid": guid, "executor": "tycho", "username": username,
                                "tycho-app": name}},
        "spec": {"type": "ClusterIP", "selector": {"name": name},
                 "ports": [{"name": "port-1", "port": 8080, "targetPort": 8080, "protocol": "TCP"}]},
    }


def bench_user(i: int) -> str:
    """Owner of system ``i``: ``alice`` owns 10 systems (among the first 1,000), the rest
    are spread over 997 users, so ``status(username="alice")`` returns 10 rows at any size."""
    return "alice" if i < 1000 and i % 100 == 0 else f"user{i % 997}"


def populate(url: str, namespace: str, count: int, start: int = 0, services: bool = True,
             workers: int = 32) -> None:
    """POST Deployments (and their Services) ``start .. start + count - 1`` concurrently."""
    def one(item):
        i, kind = item
        make = deployment_for if kind == "Deployment" else service_for
        for attempt in range(5):
            try:
                return post(url, kind, namespace, make(i, bench_user(i), namespace))
            except urllib.error.HTTPError as e:
                if e.code == 409:
                    return None
                if attempt == 4:
                    raise
            except OSError:
                if attempt == 4:
                    raise
            time.sleep(0.05 * (attempt + 1))

    kinds = ("Deployment", "Service") if services else ("Deployment",)
    items = [(i, kind) for i in range(start, start + count) for kind in kinds]
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, items))


def bench_status(emu: Emulator, namespace: str, kubeconfig: str, username: str, repeat: int) -> dict:
    """status(username=...) and status() on whatever the store holds, timed, with the
    row counts and API requests of the last call."""
    from tycho.core import Tycho

    out = {}
    with case_environ({}, kubeconfig, namespace):
        compute = Tycho().get_compute()
        for label, call in (("by_user", lambda: compute.status(username=username)),
                            ("all", lambda: compute.status())):
            times, rows = [], 0
            for _ in range(repeat):
                emu.clear_requests()
                t0 = time.perf_counter()
                rows = len(call())
                times.append(time.perf_counter() - t0)
            out[label] = {"seconds": times, "rows": rows, "requests": len(emu.requests())}
    return out


# ------------------------------------------------------------------ script entry


def _prepare_original(keep_sleep: bool = False):
    import logging

    logging.basicConfig(level=logging.CRITICAL)
    logging.disable(logging.CRITICAL)
    import tycho.kube

    if not keep_sleep:
        tycho.kube.sleep = lambda _seconds: None


def main() -> int:
    """Input (stdin, JSON): ``emulator_url``, ``namespace``, ``kubeconfig`` and
    ``mode``: ``"cases"`` with ``cases`` → list of transcripts; ``"bench"`` with
    ``case``, ``iterations``, ``latency_ms``, ``warmup``, ``keep_sleep`` → bench_ops result;
    ``"bench_status"`` with ``username``, ``repeat`` → bench_status result."""
    spec = json.load(sys.stdin)
    real_stdout = sys.stdout
    emu = attach(spec["emulator_url"])
    ns, kubeconfig = spec.get("namespace", "default"), spec["kubeconfig"]
    # kubernetes.config reads KUBECONFIG once, when it is imported.
    os.environ["KUBECONFIG"] = kubeconfig
    os.environ["NAMESPACE"] = ns
    with contextlib.redirect_stdout(sys.stderr):  # the original prints; stdout is for JSON
        _prepare_original(keep_sleep=spec.get("keep_sleep", False))
        mode = spec.get("mode", "cases")
        if mode == "cases":
            result = [drive_case(c, emu, ns, kubeconfig, original=True) for c in spec["cases"]]
        elif mode == "bench":
            result = bench_ops(spec["case"], emu, ns, kubeconfig, spec.get("iterations", 10),
                               spec.get("latency_ms", 20), spec.get("warmup", 1))
        elif mode == "bench_status":
            result = bench_status(emu, ns, kubeconfig, spec["username"], spec.get("repeat", 3))
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    json.dump(result, real_stdout)
    real_stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
