"""Differential-test oracle: what the ORIGINAL tycho-api 1.17.3 would create.

Runs INSIDE the original's virtualenv (see orig_env.py)::

    python oracle.py < cases.json > results.json

Input: a JSON list of cases::

    {"name": str,
     "request": {name, principal (JSON string), serviceaccount, env, system, services},
     "environ": {VAR: value},          # set for this case only (switches cleared first)
     "ambassador": bool,               # a Service named "ambassador" exists
     "missing_pvcs": [claim, ...],     # optional: claims the cluster lacks
     "env_secret": {KEY: value}}       # optional: data of the "<app>-env" Secret

Output: a JSON list, same order, of ``{"name", "objects": [Deployment,
NetworkPolicy?, Service...], "result": <what start() returned>}``
or ``{"name", "error": "<ExceptionClass>: message", "stage": "parse"|"start"}``.
Every occurrence of the system GUID is replaced by ``<GUID>``.  A value whose type
JSON lacks is turned into ``str`` and listed in ``"odd_types"``.

Nothing here loads a kubeconfig or opens a connection: the real
``KubernetesCompute.start`` runs against an in-memory stand-in for the cluster.
Importing this module needs only the stdlib (``SWITCHES`` is importable anywhere).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import sys
import types

# Environment switches the original reads; cleared before every case.
SWITCHES = (
    "DEV_PHASE",
    "CREATE_HOME_DIRS",
    "STDNFS_PVC",
    "PARENT_DIR",
    "SUBPATH_DIR",
    "SHARED_DIR",
    "NFSRODS_UID",
    "TYCHO_APP_RUN_AS_USER",
    "TYCHO_APP_RUN_AS_GROUP",
    "TYCHO_APP_FS_GROUP",
    "INIT_SC_RUN_AS_USER",
    "INIT_SC_RUN_AS_GROUP",
    "TYCHO_APP_ENABLE_INIT_CONTAINER",
    "TYCHO_APP_INIT_IMAGE_REPOSITORY",
    "TYCHO_APP_INIT_IMAGE_TAG",
    "TYCHO_APP_INIT_CPUS",
    "TYCHO_APP_INIT_MEMORY",
    "TYCHO_APP_GPU_RESOURCE_NAME",
    "AMBASSADOR_ID",
    "AMBASSADOR_SVC_NAME",
    "IROD_HOST",
    "NFSRODS_HOST",
    "GITEA_HOST",
    "GITEA_USER",
    "GITEA_SERVICE_NAME",
    "NAMESPACE",
    "TYCHO_ON_MINIKUBE",
    "KUBERNETES_SERVICE_HOST",
)

FAKE_UID = "00000000-0000-4000-8000-000000000000"
GUID_TOKEN = "<GUID>"
NETPOLICY_TEMPLATE = "policy/tycho-default-netpolicy.yaml"
MISSING_TEMPLATE = {"kind": "__missing_template__"}


def _ns(**kw):
    return types.SimpleNamespace(**kw)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class _Normalizer:
    """Replace the GUID everywhere and make the value JSON-native."""

    def __init__(self, guid):
        self.guid = guid
        self.odd = set()

    def text(self, s: str) -> str:
        return s.replace(self.guid, GUID_TOKEN) if self.guid else s

    def key(self, k):
        if isinstance(k, str):
            return self.text(k)
        self.odd.add(f"key:{type(k).__name__}")
        # json.dumps would turn True into "true" and None into "null"; keep
        # Python's spelling so it is visible.
        return self.text(str(k))

    def __call__(self, v):
        if isinstance(v, str):
            return self.text(v)
        if v is None or isinstance(v, (bool, int, float)):
            return v
        if isinstance(v, dict):
            return {self.key(k): self(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [self(x) for x in v]
        self.odd.add(f"value:{type(v).__name__}")
        return self.text(str(v))


@contextlib.contextmanager
def _case_environ(environ):
    saved = dict(os.environ)
    try:
        for var in SWITCHES:
            os.environ.pop(var, None)
        for k, v in (environ or {}).items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = str(v)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _make_standin(kube, case, system, captured, calls):
    """A KubernetesCompute whose API clients are in-memory fakes."""
    missing = set(case.get("missing_pvcs") or ())
    claims = sorted({v["volume_name"] for v in system.volumes} - missing)
    ambassador = bool(case.get("ambassador"))
    secret = case.get("env_secret")
    deployment_response = _ns(
        metadata=_ns(name=system.name, uid=FAKE_UID, labels={}), status=None
    )

    class CoreV1:
        def list_namespaced_persistent_volume_claim(self, namespace, **_):
            return _ns(items=[_ns(metadata=_ns(name=c)) for c in claims])

        def list_namespaced_service(self, namespace, field_selector=None, **_):
            calls.append(f"list_namespaced_service:{field_selector}")
            items = [_ns(metadata=_ns(name="ambassador"))] if ambassador else []
            return _ns(items=items)

        def list_namespaced_secret(self, namespace, **_):
            if secret is None:
                return _ns(items=[])
            data = {
                k: base64.b64encode(str(v).encode()).decode() for k, v in secret.items()
            }
            meta = _ns(name=f"{system.system_name}-env")
            return _ns(items=[_ns(metadata=meta, data=data)])

        def create_namespaced_service(self, body, namespace, **_):
            captured.append(body)
            meta = body.get("metadata") or {}
            ports = (body.get("spec") or {}).get("ports")
            port_objs = None
            if ports is not None:
                port_objs = [
                    _ns(
                        name=p.get("name"),
                        port=p.get("port"),
                        node_port=None,
                        target_port=p.get("targetPort"),
                    )
                    for p in ports
                ]
            return _ns(
                metadata=_ns(name=meta.get("name"), labels=meta.get("labels") or {}),
                spec=_ns(ports=port_objs),
            )

    class AppsV1:
        def create_namespaced_deployment(self, body, namespace, **_):
            captured.append(body)
            return deployment_response

    class NetworkingV1:
        def create_namespaced_network_policy(self, body, namespace, **_):
            captured.append(body)
            return _ns(metadata=_ns(name=(body or {}).get("metadata", {}).get("name")))

    class StandIn(kube.KubernetesCompute):
        def __init__(self):  # no super(): that would load a kubeconfig
            self.config = system.config
            self.api = CoreV1()
            self.extensions_api = AppsV1()
            self.networking_api = NetworkingV1()
            self.rbac_api = None
            self.try_minikube = False
            self.namespace = "default"

        def delete(self, name, namespace="default"):
            calls.append(f"delete:{name}")
            return {}

    return StandIn()


def _wrap_render(system):
    original_render = system.render

    def render(template, context={}):  # noqa: B006 - same signature as System.render
        if template == NETPOLICY_TEMPLATE:
            try:
                return list(original_render(template, context))
            except ValueError:
                return [dict(MISSING_TEMPLATE)]
        return original_render(template, context)

    system.render = render


def run_case(case, mods):
    model, kube, config_mod, ApiClient = mods
    guid_box = []
    original_get_identifier = model.System.__dict__["get_identifier"]

    def get_identifier():
        guid = original_get_identifier.__func__()
        guid_box.append(guid)
        return guid

    out = {"name": case.get("name")}
    request = copy.deepcopy(case.get("request") or {})
    captured: list = []
    calls: list = []
    stage = "parse"
    model.System.get_identifier = staticmethod(get_identifier)
    try:
        with _case_environ(case.get("environ")):
            kube.port_forwards.clear()
            kube.sleep = lambda _seconds: None
            config = config_mod.Config("conf/tycho.yaml")
            env = request.get("env", {})
            system = model.System.parse(
                config,
                request["name"],
                request.get("principal"),
                request["system"],
                service_account=request.get("serviceaccount", "default"),
                env=copy.deepcopy(env),
                services=request.get("services", {}),
            )
            stage = "start"
            _wrap_render(system)
            standin = _make_standin(kube, case, system, captured, calls)
            result = kube.KubernetesCompute.start(standin, system)
        api = ApiClient()
        objects = [api.sanitize_for_serialization(o) for o in captured]
        out["objects"] = objects
        out["result"] = result
    except Exception as exc:  # noqa: BLE001 - the oracle reports every failure
        root = exc
        if type(exc).__name__ == "StartException" and exc.__context__ is not None:
            root = exc.__context__
            out["wrapped"] = f"StartException: {exc.args[0]}"
        out["error"] = _describe(root)
        out["stage"] = stage
        if captured:
            out["objects_before_error"] = ApiClient().sanitize_for_serialization(
                captured
            )
    finally:
        model.System.get_identifier = original_get_identifier
    if calls:
        out["calls"] = [c for c in calls if not c.startswith("list_")]
        if not out["calls"]:
            del out["calls"]
    norm = _Normalizer(guid_box[-1] if guid_box else None)
    out = norm(out)
    if norm.odd:
        out["odd_types"] = sorted(norm.odd)
    return out


def main(argv=None) -> int:
    cases = json.load(sys.stdin)
    real_stdout = sys.stdout
    # The original prints tracebacks and may print(); keep stdout for JSON.
    with contextlib.redirect_stdout(sys.stderr):
        import logging

        logging.basicConfig(level=logging.CRITICAL)
        import tycho.config as config_mod
        from kubernetes.client import ApiClient
        from tycho import kube, model

        mods = (model, kube, config_mod, ApiClient)
        results = [run_case(case, mods) for case in cases]
    json.dump(results, real_stdout, indent=1, sort_keys=False)
    real_stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
