"""One script, run unchanged against the original tycho-api 1.17.3 (in its virtualenv)
and against ours, exercising the package the way test suites and scripts use it:
``System.parse`` with positional arguments, the model constructors, ``system.render``
of each template, ``Resource.get_resource_obj``, ``TemplateUtils.render_text``,
``TychoContext(product=P)``, ``NullContext.start`` / ``TychoContext.start`` (with the
``_start`` anchor recording the request) and ``TychoClient.parse_env``.

    python dropin_script.py < input.json > output.json

Input: ``{"composes": [{name, system, env, services}], "spec_url": str, "tmp": dir,
"netpolicy_template": text, "netpolicy_request": {name, system, env, services}}``.
Output: one JSON object of plain values (attributes of objects as dicts, with a
``__class__`` key); every GUID is replaced by ``<GUID>``. Only the standard library and
``tycho`` are imported.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import types

SWITCHES = (
    "DEV_PHASE", "CREATE_HOME_DIRS", "STDNFS_PVC", "PARENT_DIR", "SUBPATH_DIR", "SHARED_DIR",
    "NFSRODS_UID", "TYCHO_APP_RUN_AS_USER", "TYCHO_APP_RUN_AS_GROUP", "TYCHO_APP_FS_GROUP",
    "INIT_SC_RUN_AS_USER", "INIT_SC_RUN_AS_GROUP", "AMBASSADOR_ID", "IROD_HOST", "REST_API",
)
GUID_RE = re.compile(r"[0-9a-f]{32}")
PRINCIPAL = json.dumps({"username": "jdoe", "access_token": "tok", "refresh_token": "ref", "host": "h.example.org"})


def plain(v, depth=0):
    """Plain JSON form: objects become their public attributes plus ``__class__``."""
    if depth > 12:
        return "<deep>"
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, dict):
        return {str(k): plain(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x, depth + 1) for x in v]
    if isinstance(v, types.GeneratorType):
        return {"__generator__": [plain(x, depth + 1) for x in v]}
    attrs = getattr(v, "__dict__", None)
    if isinstance(attrs, dict):
        out = {"__class__": type(v).__name__}
        for k, x in attrs.items():
            if k.startswith("_") or k in ("config", "source_text", "http_session", "client") or callable(x):
                continue
            out[k] = plain(x, depth + 1)
        return out
    return str(v)


def guarded(fn):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - the error class is the result
        if os.environ.get("DROPIN_TRACE"):
            import traceback

            traceback.print_exc()
        return {"__error__": type(e).__name__}


def _raises(fn, cls):
    """Whether ``fn`` raises an instance of ``cls`` (what ``except cls`` relies on)."""
    try:
        fn()
    except cls:
        return True
    except Exception as e:  # noqa: BLE001
        return type(e).__name__
    return False


def parse_scenarios(composes, config):
    from tycho.model import System

    out = {}
    systems = {}
    for c in composes:
        def go(c=c):
            s = System.parse(config, c["name"], PRINCIPAL, c["system"], "default", dict(c["env"]), c["services"])
            systems[c["name"]] = s
            return {"system": plain(s), "source_text_is_str": isinstance(s.source_text, str),
                    "requires_network_policy": s.requires_network_policy()}
        out[c["name"]] = guarded(go)
    # Positional form, the way the original's own tests call it.
    c = composes[0]
    out["positional"] = guarded(lambda: plain(System.parse(config, c["name"], PRINCIPAL, c["system"], None, {}, {})))
    out["env_none"] = guarded(lambda: plain(System.parse(config, c["name"], PRINCIPAL, {
        "services": {"web": {"image": "nginx", "ports": ["80"], "environment": ["U={{ username }}"]}}}, "sa", None, {})))
    return out, systems


def render_scenarios(systems):
    out = {}
    deployment = types.SimpleNamespace(metadata=types.SimpleNamespace(name="d", uid="00000000-0000-4000-8000-000000000000"))
    for name, system in systems.items():
        r = {"pod": guarded(lambda s=system: list(s.render("pod.yaml"))),
             "pod_ctx": guarded(lambda s=system: list(s.render(template="pod.yaml", context={}))),
             "pod_next_kind": guarded(lambda s=system: next(s.render("pod.yaml"))["kind"]),
             "pvc": guarded(lambda s=system: list(s.render("pvc.yaml"))),
             "pv": guarded(lambda s=system: list(s.render("pv.yaml"))),
             "netpolicy": guarded(lambda s=system: list(s.render("policy/tycho-default-netpolicy.yaml")))}
        services = {}
        for cname, service in system.services.items():
            services[cname] = guarded(lambda s=system, v=service: list(s.render(
                "service.yaml", context={"service": v, "create_deployment_api_response": deployment})))
        r["services"] = services
        out[name] = r
    # The pv/pvc templates read keys of volumes the model never sets; suites set them.
    system = next(iter(systems.values()))
    system.volumes = [
        {"requires_nfs": "no", "claim_name": "claim-a", "volume_name": "vol-a", "host_path": "/data/a"},
        {"requires_nfs": "no", "claim_name": "claim-b", "volume_name": "vol-b", "disk_name": "disk-b"},
        {"requires_nfs": "yes", "claim_name": "nfs", "volume_name": "nfs"},
    ]
    out["pvc_with_keys"] = guarded(lambda: list(system.render("pvc.yaml")))
    out["pv_with_keys"] = guarded(lambda: list(system.render("pv.yaml")))
    return out


def user_template_scenarios(payload):
    """A user's NetworkPolicy template (``payload["netpolicy_template"]``, from
    ``tycho.templates.paths``) on a request whose ``services`` names an entry that no
    compose service has: the template iterates ``system.services``."""
    from tycho.config import Config
    from tycho.model import System

    root = os.path.join(payload["tmp"], "user-templates")
    os.makedirs(os.path.join(root, "policy"), exist_ok=True)
    with open(os.path.join(root, "policy", "tycho-default-netpolicy.yaml"), "w") as f:
        f.write(payload["netpolicy_template"])
    config = Config("conf/tycho.yaml")
    config["tycho"]["templates"]["paths"] = [root]
    request = payload["netpolicy_request"]
    out = {}

    def go():
        system = System.parse(config, request["name"], PRINCIPAL, request["system"], "default",
                              dict(request["env"]), request["services"])
        return {"services": sorted(system.services),
                "requires_network_policy": system.requires_network_policy(),
                "netpolicy": list(system.render("policy/tycho-default-netpolicy.yaml"))}

    out["netpolicy_named_entry"] = guarded(go)
    return out


def constructor_scenarios(config):
    from tycho.model import Container, HttpProbe, Limits, ModifySystem, Probe, Service, System, TcpProbe, Volumes

    out = {}
    out["limits"] = guarded(lambda: plain(Limits("1", "0", "1G", "2G")))
    out["limits_kw"] = guarded(lambda: plain(Limits(cpus=0.5, memory="512M")))
    out["probe"] = guarded(lambda: plain(Probe(["true"], 5, 10, 3)))
    out["http_probe"] = guarded(lambda: plain(HttpProbe(5, 10, 3, {"path": "/health", "port": 8080})))
    out["http_probe_defaults"] = guarded(lambda: plain(HttpProbe(httpGet={})))
    out["tcp_probe"] = guarded(lambda: plain(TcpProbe(1, 2, 3, {"port": 22})))
    out["service"] = guarded(lambda: plain(Service(8080, ["10.0.0.0/8", "192.168.1.5"])))
    out["service_bad_cidr"] = guarded(lambda: plain(Service(80, ["10.0.0.1/8"])))
    out["container"] = guarded(lambda: plain(Container(
        "web", "nginx:1", ["nginx", "-g", "daemon off;"], ["A=1", "B=two"], 1000,
        {"cpus": "1", "memory": "1G"}, {"cpus": "0.5"}, [{"containerPort": "80"}], [{"containerPort": "81"}],
        ["db"], ["pvc://claim/sub:/data"], {"cmd": ["true"], "delay": 1}, {"httpGet": {"path": "/"}, "period": 2})))
    out["container_limits_list"] = guarded(lambda: plain(Container("c", "i", limits=[{"cpus": "2"}])))
    out["volumes"] = guarded(lambda: plain(Volumes("id", [
        {"name": "a", "volumes": ["pvc://c1:/m1", "pvc://c1/sub/dir:/m2", "pvc://c2:/m3"]}]).process_volumes()))
    out["volumes_bad"] = guarded(lambda: Volumes("id", [{"name": "a", "volumes": ["/host:/ctr"]}]).process_volumes())
    containers = [{"name": "web", "image": "nginx", "ports": [{"containerPort": "80"}], "volumes": ["pvc://c1:/m1"]}]
    out["system"] = guarded(lambda: plain(System(
        config, "web", {"username": "jdoe", "host": "h"}, "sa", "lab", {"enabled": False, "target": None},
        containers, "0123456789abcdef0123456789abcdef", False, {"web": {"port": 80, "clients": []}},
        {"run_as_user": "1000"}, {"run_as_user": "0"})))
    out["system_no_containers"] = guarded(lambda: System(config, "x", {"username": "u"}, None, "", {}, [], "id", False))
    out["modify"] = guarded(lambda: plain(ModifySystem.parse_modify(config, "guid", {"a": "b"}, "1", None)))
    out["modify_nothing"] = guarded(lambda: plain(ModifySystem.parse_modify(config, "guid", {}, None, None)))
    out["identifier"] = guarded(lambda: bool(GUID_RE.fullmatch(System.get_identifier())))
    out["security_context"] = guarded(lambda: [System.set_security_context({}), System.set_security_context(
        {"runAsUser": 1, "runAsGroup": 2, "fsGroup": 3}), System.set_init_security_context({"initRunAsUser": 9})])
    return out


def util_scenarios(tmp):
    from tycho.tycho_utils import Resource, TemplateUtils

    out = {}
    res = Resource()
    out["tycho_yaml"] = guarded(lambda: plain(res.get_resource_obj("conf/tycho.yaml")))
    out["api_schema"] = guarded(lambda: plain(res.get_resource_obj("api-schema.yaml")))
    out["missing"] = guarded(lambda: res.get_resource_obj("conf/nothing-here.yaml"))
    with open(os.path.join(tmp, "r.json"), "w") as f:
        json.dump({"a": [1, 2, {"b": None}]}, f)
    with open(os.path.join(tmp, "r.yaml"), "w") as f:
        f.write("a: 1\nb: [x, 'y', 3.5, yes, ~]\nc: '010'\nd: 010\n")
    out["abs_json"] = guarded(lambda: res.get_resource_obj(os.path.join(tmp, "r.json")))
    out["abs_yaml"] = guarded(lambda: res.get_resource_obj(os.path.join(tmp, "r.yaml")))
    out["format_json"] = guarded(lambda: res.get_resource_obj(os.path.join(tmp, "r.json"), format="json"))
    out["resource_path"] = guarded(lambda: Resource.get_resource_path("/abs/x") == "/abs/x"
                                   and Resource.get_resource_path("conf/tycho.yaml").endswith(os.path.join("tycho", "conf", "tycho.yaml")))
    texts = [
        ("a: {{ x }}\nb: {{ y|default('d') }}\n", {"x": 1}),
        ("---\nkind: A\nv: {{ items|length }}\n---\nkind: B\nitems:\n{% for i in items %}\n- {{ i }}\n{% endfor %}\n", {"items": [1, 2]}),
        ("name: {{ args.name }}\nport: '{{ args.port }}'\n", {"args": types.SimpleNamespace(name="web", port=80)}),
        ("v: {{ flag }}\nn: {{ none }}\n", {"flag": True, "none": None}),
        ("{% if x is defined %}x: 1{% else %}x: 0{% endif %}\n", {}),
        ("", {}),
    ]
    out["render_text"] = [guarded(lambda t=t, c=c: list(TemplateUtils.render_text(t, c))) for t, c in texts]
    out["render_text_next"] = guarded(lambda: next(TemplateUtils.render_text("a: 1\n---\nb: 2\n", {})))
    out["render_text_bad_yaml"] = guarded(lambda: list(TemplateUtils.render_text("a: [\n", {})))
    out["render_text_iterable_twice"] = guarded(lambda: [list(TemplateUtils.render_text("a: 1\n", {}))])
    out["render_string"] = guarded(lambda: TemplateUtils.render_string("{{ a }}-{{ b }}", {"a": 1, "b": "x"}))
    out["apply_environment"] = guarded(lambda: TemplateUtils.apply_environment(
        "A=1\nB=$A\nC=x=y\n", "$A ${B} $$ $C $NOPE ${NOPE} $ {x}"))
    out["missing_template_is_valueerror"] = _raises(
        lambda: TemplateUtils({"tycho": {"templates": {"paths": []}}}).render("no-such.yaml", {}), ValueError)
    out["trunc"] = guarded(lambda: [TemplateUtils.trunc("abcdef", 3), TemplateUtils.trunc("ab", 3)])
    return out


def client_scenarios():
    from tycho.client import TychoClient

    client = TychoClient(url="http://127.0.0.1:9")
    texts = ["A=1\nB=x=y\n\nnot a setting\nC=\n", "A=1\r\nB=2\r\n", "", "=v\nK==\nK2=last\nK2=again"]
    return {"url": client.url, "parse_env": [guarded(lambda t=t: client.parse_env(t)) for t in texts]}


def context_scenarios(spec_url):
    from tycho.context import ContextFactory, NullContext, Principal, TychoContext

    out = {}
    tc = TychoContext(product="common")
    out["common_attrs"] = sorted(k for k in vars(tc) if not k.startswith("_"))
    out["common_types"] = {k: type(getattr(tc, k)).__name__ for k in ("product", "apps", "registry", "app_defaults")}
    out["common_product"] = tc.product
    out["tycho_config_url"] = tc.tycho_config_url
    out["apps_entry_keys_are_str"] = all(isinstance(k, str) for k in tc.apps)
    app = {
        "name": "Probe App", "app_id": "probe", "description": "d", "details": "x", "docs": "https://d/",
        "spec": spec_url, "icon": "https://i/icon.png", "count": 1, "services": {"probe": 8888},
        "securityContext": {"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100},
        "ext": {"kube": {"livenessProbe": {"httpGet": {"path": "/", "port": 8888}, "delay": 5}}},
        "conn_string": "lab/tree", "proxy-rewrite-rule": True, "gitea-integration": False,
    }
    principal = Principal("jdoe", "tok", "ref")
    null = NullContext(product="common")
    null.apps["probe"] = dict(app)
    out["null_start"] = guarded(lambda: plain(null.start(principal=principal, app_id="probe")))
    out["null_start_positional"] = guarded(lambda: plain(null.start(principal, "probe")))
    out["spec"] = guarded(lambda: plain(null.get_spec("probe")))
    out["settings"] = guarded(lambda: null.get_settings("probe"))

    recorded = []

    def _start(request):
        from tycho.client import TychoSystem

        recorded.append(request)
        return TychoSystem(status="success", message="ok", result={
            "name": request["name"], "conn_string": "", "sid": "0123456789abcdef0123456789abcdef",
            "containers": {k: {"ip_address": None, "port-1": int(v["port"])} for k, v in request["services"].items()}})

    live = TychoContext(product="common")
    live.apps["probe"] = dict(app)
    live._start = _start
    resources = {"deploy": {"resources": {"limits": {"cpus": "2", "memory": "4G"},
                                          "reservations": {"cpus": "1", "memory": "2G"}}}}
    out["live_start"] = guarded(lambda: plain(live.start(principal=principal, app_id="probe",
                                                         resource_request=resources, host="h.example.org")))
    out["live_request"] = plain(recorded)
    if recorded:
        from tycho.config import Config
        from tycho.model import System

        r = recorded[0]
        out["live_system"] = guarded(lambda: plain(System.parse(
            Config("conf/tycho.yaml"), r["name"], r["principal"], r["system"], r["serviceaccount"], r["env"], r["services"])))
    out["unknown_app_is_keyerror"] = _raises(lambda: null.get_spec("no-such-app"), KeyError)
    out["factory_null"] = guarded(lambda: type(ContextFactory().get(product="common", context_type="null")).__name__)
    return out


def main():
    payload = json.load(sys.stdin)
    for var in SWITCHES:
        os.environ.pop(var, None)
    os.environ["DEV_PHASE"] = "prod"
    real_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        import logging

        logging.basicConfig(level=logging.CRITICAL)
        from tycho.config import Config

        config = Config("conf/tycho.yaml")
        out = {}
        out["parse"], systems = parse_scenarios(payload["composes"], config)
        out["render"] = render_scenarios(systems)
        out["constructors"] = constructor_scenarios(config)
        out["user_templates"] = user_template_scenarios(payload)
        out["utils"] = util_scenarios(payload["tmp"])
        out["client"] = client_scenarios()
        out["context"] = context_scenarios(payload["spec_url"])
    text = GUID_RE.sub("<GUID>", json.dumps(out, sort_keys=True, default=str))
    real_stdout.write(text + "\n")


if __name__ == "__main__":
    main()
