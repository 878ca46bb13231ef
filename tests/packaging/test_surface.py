"""The public Python surface of tycho: every module, class and method appstore and
existing test suites use, with the original's argument names and result shapes.

No network beyond 127.0.0.1, no cluster, no kubeconfig.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from unittest import mock

import pytest
import tycho
import tycho.actions
import tycho.client
import tycho.config
import tycho.context
import tycho.core
import tycho.kube
import tycho.model
import tycho.tycho_utils
from tycho.actions import (
    DeleteSystemResource,
    ModifySystemResource,
    StartSystemResource,
    StatusSystemResource,
)
from tycho.client import TychoApps, TychoClient, TychoClientFactory, TychoService, TychoStatus, TychoSystem
from tycho.config import Config
from tycho.context import ContextFactory, NullContext, Principal, TychoContext
from tycho.core import Tycho
from tycho.exceptions import ContextException, TychoException
from tycho.kube import KubernetesCompute
from tycho.model import (
    Container,
    HttpProbe,
    Limits,
    ModifySystem,
    Probe,
    Service,
    System,
    TcpProbe,
    Volumes,
)
from tycho.tycho_utils import NetworkUtils, Resource, TemplateUtils

PUBLIC = {
    "tycho.client": ["TychoClient", "TychoClientFactory", "TychoSystem", "TychoStatus", "TychoService", "TychoApps"],
    "tycho.context": ["TychoContext", "NullContext", "ContextFactory", "Principal"],
    "tycho.core": ["Tycho"],
    "tycho.model": [
        "System", "Container", "Service", "Volumes", "Limits", "Probe", "HttpProbe", "TcpProbe", "ModifySystem",
    ],
    "tycho.config": ["Config"],
    "tycho.exceptions": ["TychoException", "StartException", "DeleteException", "ModifyException", "ContextException"],
    "tycho.tycho_utils": ["TemplateUtils", "NetworkUtils", "Resource"],
    "tycho.actions": ["StartSystemResource", "StatusSystemResource", "DeleteSystemResource", "ModifySystemResource"],
    "tycho.kube": ["KubernetesCompute"],
    "tycho.compute": ["Compute"],
    "tycho.factory": ["ComputeFactory"],
}

METHODS = {
    TychoClient: ["request", "start", "status", "delete", "modify", "up", "list", "down", "patch", "parse_env",
                  "format_name"],
    TychoContext: ["start", "status", "delete", "update", "get_spec", "get_definition", "get_settings",
                   "get_env_registry", "add_conf_impl", "inherit", "mixin", "mixin_defaults", "log_dict", "_start",
                   "_grok", "_get_config"],
    Tycho: ["parse", "parse_modify", "get_compute", "is_valid_backplane", "supported_backplanes"],
    System: ["parse", "render", "requires_network_policy", "get_identifier", "get_namespace", "set_security_context",
             "set_init_security_context", "env_from_components", "to_dict"],
    KubernetesCompute: ["start", "status", "delete", "modify", "get_namespace"],
    TemplateUtils: ["render", "render_text", "render_string", "apply_environment", "trunc"],
    Resource: ["get_resource_path", "load_json", "load_yaml", "get_resource_obj"],
    NetworkUtils: ["get_client_ip"],
    TychoService: ["get_utilization"],
    TychoApps: ["getmetadata", "deleterepo"],
    Volumes: ["process_volumes", "volume"],
    ModifySystem: ["parse_modify"],
}

COMPOSE = {
    "version": "3.0",
    "services": {
        "jupyter-ds": {
            "image": "jupyter/datascience-notebook:2024-01-01",
            "entrypoint": "start.sh jupyter lab --LabApp.token=",
            "ports": ["8888:8888"],
            "environment": ["MODE=lab"],
            "deploy": {
                "resources": {
                    "limits": {"cpus": "2", "memory": "4G", "ephemeralStorage": "2G"},
                    "reservations": {"cpus": "1", "memory": "2G", "ephemeralStorage": "1G"},
                }
            },
        }
    },
}


def start_request(clients=()):
    return {
        "name": "jupyter-ds",
        "principal": json.dumps({"username": "jdoe", "access_token": "tok-A", "refresh_token": "tok-R",
                                 "host": "helx.example.org"}),
        "serviceaccount": "default",
        "env": {"GREETING": "hello"},
        "system": json.loads(json.dumps(COMPOSE)),
        "services": {"jupyter-ds": {"port": "8888", "clients": list(clients)}},
    }


START_RESULT = {
    "status": "success",
    "result": {
        "name": "jupyter-ds-0123456789abcdef0123456789abcdef",
        "sid": "0123456789abcdef0123456789abcdef",
        "containers": {"jupyter-ds": {"ip_address": "10.1.2.3", "port-1": 31000}},
        "conn_string": "",
    },
    "message": "Started system jupyter-ds-0123456789abcdef0123456789abcdef",
}


@pytest.fixture(autouse=True)
def _no_rest_api(monkeypatch):
    monkeypatch.delenv("REST_API", raising=False)
    monkeypatch.setenv("DEV_PHASE", "test")


# ---------------------------------------------------------------- import hygiene


def test_public_names_exist():
    import importlib

    for module_name, names in PUBLIC.items():
        module = importlib.import_module(module_name)
        for name in names:
            assert hasattr(module, name), f"{module_name}.{name} missing"
    for cls, methods in METHODS.items():
        for method in methods:
            assert callable(getattr(cls, method, None)), f"{cls.__name__}.{method} missing"
    assert tycho.__version__


def test_importing_touches_nothing(tmp_path):
    """Importing every module loads no kubernetes/requests/yaml/jinja2, reads no
    kubeconfig and writes nothing in the working directory."""
    code = textwrap.dedent(
        """
        import json, sys, time
        t = time.perf_counter()
        import tycho.context
        elapsed = time.perf_counter() - t
        import tycho, tycho.client, tycho.core, tycho.model, tycho.config, tycho.tycho_utils
        import tycho.actions, tycho.kube, tycho.exceptions, tycho.compute, tycho.factory
        context = tycho.context.TychoContext(product="common")  # packaged registry: no files, no network
        assert "jupyter-ds" in context.apps
        heavy = [m for m in ("kubernetes", "requests", "yaml", "jinja2", "requests_cache", "deepmerge",
                             "netifaces", "git") if m in sys.modules]
        print(json.dumps({"heavy": heavy, "elapsed": elapsed}))
        """
    )
    env = dict(os.environ, KUBECONFIG=str(tmp_path / "no-such-kubeconfig"), HOME=str(tmp_path))
    env.pop("KUBERNETES_SERVICE_HOST", None)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert report["elapsed"] < 5.0
    assert list(tmp_path.iterdir()) == []


def test_importtime_of_context_has_no_heavy_modules(tmp_path):
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import tycho.context"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "tycho.context" in imported
    for heavy in ("kubernetes", "requests", "yaml", "jinja2", "urllib.request"):
        assert heavy not in imported


def test_loggers_are_named_after_modules():
    import tycho.compute
    import tycho.factory

    for module in (tycho.client, tycho.context, tycho.kube, tycho.actions, tycho.model, tycho.core, tycho.config,
                   tycho.tycho_utils, tycho.compute, tycho.factory):
        assert module.logger.name == module.__name__


def test_async_variants_are_coroutines():
    import inspect

    for cls, names in ((TychoClient, ["astart", "astatus", "adelete", "amodify"]),
                       (TychoContext, ["astart", "astatus", "adelete", "aupdate", "aget_spec", "aget_definition"])):
        for name in names:
            assert inspect.iscoroutinefunction(getattr(cls, name)), f"{cls.__name__}.{name}"
    assert NullContext.astart is TychoContext.astart  # the null context's start runs through it too


# ---------------------------------------------------------------- config


def test_config_default_and_dict_like():
    config = Config()
    assert config["tycho"]["backplane"] == "kubernetes"
    assert config.get("nope") is None
    assert config.get("nope", 7) == 7
    assert "tycho" in config
    assert isinstance(config, dict)
    assert config.conf["tycho"]["templates"]["paths"] == []
    config["extra"] = {"a": 1}
    assert config["extra"] == {"a": 1} and config.conf["extra"] == {"a": 1}
    assert "'extra': {'a': 1}" in str(config)


def test_config_paths_and_dicts(tmp_path):
    relative = Config("conf/tycho.yaml")
    assert relative["tycho"]["compute"]["system"]["defaults"]["securityContext"]["uid"] == 1000
    path = tmp_path / "my.yaml"
    path.write_text("tycho:\n  backplane: kubernetes\n  templates:\n    paths: []\nmode: 0600\n")
    absolute = Config(str(path))
    assert absolute["mode"] == 384  # YAML 1.1 octal, as PyYAML reads it
    mapping = {"tycho": {"backplane": "kubernetes"}}
    wrapped = Config(mapping)
    assert wrapped.conf is mapping
    with pytest.raises(ValueError):
        Config(42)


# ---------------------------------------------------------------- templates and utils


def test_template_utils_text_helpers():
    docs = list(TemplateUtils.render_text("a: {{ x }}\nb: {{ y }}\n---\nc: {{ z }}\n", {"x": 1, "y": None, "z": True}))
    assert docs == [{"a": 1, "b": "None"}, {"c": True}]
    assert TemplateUtils.render_string("{{ a }}-{{ b }}", {"a": 0.01, "b": [1, "x"]}) == "0.01-[1, 'x']"
    assert TemplateUtils.apply_environment("HOST=example.org\nPORT=80\n", "http://$HOST:${PORT}/$OTHER") == \
        "http://example.org:80/$OTHER"
    assert TemplateUtils.apply_environment("", "$X") == "$X"
    assert TemplateUtils.trunc("abcdef", max_len=3) == "abc.."
    assert TemplateUtils.trunc("abc", max_len=3) == "abc"
    namespace = SimpleNamespace(name="web", port=80)
    assert TemplateUtils.render_text("n: {{ args.name }}\np: {{ args.port }}", {"args": namespace}) == [
        {"n": "web", "p": 80}
    ]


def test_template_override_directory(tmp_path):
    (tmp_path / "pod.yaml").write_text("kind: Custom\nname: {{ system.name }}\nuser: {{ system.username }}\n")
    system = Tycho().parse(start_request())
    builtin = system.render("pod.yaml")
    assert builtin[0]["kind"] == "Pod"
    system.config["tycho"]["templates"]["paths"] = [str(tmp_path)]
    try:
        custom = system.render("pod.yaml")
    finally:
        system.config["tycho"]["templates"]["paths"] = []
    assert custom == [{"kind": "Custom", "name": system.name, "user": "jdoe"}]
    utils = TemplateUtils(config={"tycho": {"templates": {"paths": [str(tmp_path)]}}})
    assert utils.render("pod.yaml", {"system": {"name": "n", "username": "u"}}) == [
        {"kind": "Custom", "name": "n", "user": "u"}
    ]
    with pytest.raises(TychoException):
        utils.render("no-such-template.yaml", {})


def test_resource_helpers(tmp_path):
    assert Resource.get_resource_path("conf/tycho.yaml").endswith(os.path.join("tycho", "conf", "tycho.yaml"))
    assert Resource.get_resource_path("/abs/file") == "/abs/file"
    (tmp_path / "x.json").write_text('{"a": [1, 2]}')
    (tmp_path / "x.yaml").write_text("a: yes\n")
    assert Resource.load_json(str(tmp_path / "x.json")) == {"a": [1, 2]}
    assert Resource.load_yaml(str(tmp_path / "x.yaml")) == {"a": True}
    resource = Resource()
    assert resource.get_resource_obj("conf/tycho.yaml")["tycho"]["backplane"] == "kubernetes"
    assert resource.get_resource_obj(str(tmp_path / "x.json")) == {"a": [1, 2]}
    assert resource.get_resource_obj("conf/missing.yaml") is None
    schema = resource.get_resource_obj("api-schema.yaml")
    assert {"System", "StatusRequest", "DeleteRequest", "ModifyRequest"} <= set(schema["components"]["schemas"])


class _Headers:
    def __init__(self, values):
        self.values = values

    def getlist(self, name):
        return self.values if name == "X-Forwarded-For" else []


def test_network_utils_client_ip():
    direct = SimpleNamespace(remote_addr="10.0.0.5", headers=_Headers([]))
    assert NetworkUtils.get_client_ip(direct) == "10.0.0.5"
    proxied = SimpleNamespace(remote_addr="10.0.0.5", headers=_Headers(["203.0.113.9, 10.0.0.1"]))
    assert NetworkUtils.get_client_ip(proxied) == "203.0.113.9"
    dict_headers = SimpleNamespace(remote_addr="10.0.0.5", headers={"X-Forwarded-For": "198.51.100.2"})
    assert NetworkUtils.get_client_ip(dict_headers) == "198.51.100.2"
    assert isinstance(NetworkUtils.get_client_ip(direct, debug=True), str)  # no netifaces needed


# ---------------------------------------------------------------- model


def test_system_parse_and_render_pod():
    tycho_core = Tycho()
    system = tycho_core.parse(start_request())
    assert len(system.identifier) == 32
    assert system.name == f"jupyter-ds-{system.identifier}"
    assert system.system_name == "jupyter-ds"
    assert system.username == "jdoe" and system.host == "helx.example.org"
    assert system.serviceaccount == "default"
    assert system.config is tycho_core.config
    (container,) = system.containers
    assert isinstance(container, Container)
    assert container.image == "jupyter/datascience-notebook:2024-01-01"
    assert container.command == ["start.sh", "jupyter", "lab", "--LabApp.token="]
    assert container.ports == [{"containerPort": "8888"}]
    assert isinstance(container.limits, Limits) and container.limits.cpus == "2" and container.limits.memory == "4G"
    assert container.requests.ephemeralStorage == "1G"
    assert ["MODE", "lab"] in container.env and ["GREETING", "hello"] in container.env
    service = system.services["jupyter-ds"]
    assert isinstance(service, Service)
    assert service.name == system.name and service.name_noid == "jupyter-ds" and service.port == "8888"
    assert system.requires_network_policy() is False
    assert isinstance(system.source_text, str) and system.identifier in system.source_text

    plain = system.to_dict()
    assert "config" not in plain and plain["containers"][0]["limits"]["cpus"] == "2"
    json.dumps(plain)

    (pod,) = system.render("pod.yaml")
    assert pod["kind"] == "Pod"
    labels = pod["metadata"]["labels"]
    assert labels["tycho-guid"] == system.identifier and labels["username"] == "jdoe"
    spec_container = pod["spec"]["containers"][0]
    assert spec_container["image"] == container.image
    env = {e["name"]: e.get("value") for e in spec_container["env"]}
    assert env["GUID"] == system.identifier and env["USER_NAME"] == "jdoe" and env["GREETING"] == "hello"
    # The same env the executor creates: the tokens by reference to the system's Secret.
    token = next(e for e in spec_container["env"] if e["name"] == "ACCESS_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": f"{system.name}-tokens", "key": "access_token"}
    assert "tok-A" not in json.dumps(pod) and "tok-R" not in json.dumps(pod)

    (svc,) = system.render("service.yaml", context={"service": service})
    assert svc["kind"] == "Service" and svc["spec"]["ports"][0]["name"] == "port-1"


def test_system_with_clients_needs_policy():
    system = Tycho().parse(start_request(clients=["10.0.0.0/8"]))
    assert system.requires_network_policy() is True
    (policy,) = system.render("policy/tycho-default-netpolicy.yaml")
    assert policy["kind"] == "NetworkPolicy"


def test_system_static_helpers(monkeypatch):
    ident = System.get_identifier()
    assert len(ident) == 32 and int(ident, 16) >= 0
    monkeypatch.delenv("TYCHO_APP_RUN_AS_USER", raising=False)
    monkeypatch.setenv("TYCHO_APP_FS_GROUP", "7")
    assert System.set_security_context({"runAsUser": 1000, "runAsGroup": 100}) == {
        "run_as_user": "1000", "run_as_group": "100", "fs_group": "7"}
    assert System.set_init_security_context({"initRunAsUser": 5}) == {"run_as_user": "5", "run_as_group": "0"}
    assert System.env_from_components({"environment": ["A=1"]}, {"B": "x-{{ B }}"}) == ["A=1", "B=x-x-{{ B }}"]


def test_model_constructors_keep_original_signatures():
    limits = Limits(cpus="1", gpus="0", memory="1G", ephemeralStorage="1G")
    assert repr(limits) == "cpus:1 gpus:0 mem:1G ephemeralStorage:1G"
    http = HttpProbe(delay=1, period=2, threshold=3, httpGet={"path": "/health", "port": 8080})
    assert (http.path, http.port, http.httpHeaders, http.cmd) == ("/health", 8080, None, None)
    tcp = TcpProbe(delay=1, tcpSocket={"port": 22})
    assert tcp.port == 22
    probe = Probe(cmd=["true"], delay=5)
    assert probe.cmd == ["true"] and probe.period is None
    container = Container(
        name="web", image="nginx:1", command=["nginx"], env=["A=1", "B=x=y"], limits={"cpus": "1", "memory": "1G"},
        requests={"cpus": "0.5"}, ports=[{"containerPort": 80}], volumes=["pvc://data/web:/srv:ro"],
        liveness_probe={"httpGet": {"path": "/"}}, readiness_probe={"tcpSocket": {"port": 80}},
    )
    assert container.env == [["A", "1"], ["B", "x=y"]]
    assert isinstance(container.liveness_probe, HttpProbe) and isinstance(container.readiness_probe, TcpProbe)
    assert container.limits.cpus == "1" and container.requests.cpus == "0.5"

    volumes = Volumes("guid", [{"name": "web", "volumes": ["pvc://data/web:/srv", "pvc://data:/data:ro"]}])
    assert volumes.process_volumes() == [
        {"container_name": "web", "pvc_name": "data", "volume_name": "data", "path": "/srv", "subpath": "web",
         "read_only": False},
        {"container_name": "web", "pvc_name": None, "volume_name": "data", "path": "/data", "subpath": "",
         "read_only": True},
    ]
    with pytest.raises(Exception, match="Wrong Volume definition"):
        Volumes("g", [{"name": "web", "volumes": ["/host:/container"]}]).process_volumes()

    service = Service(port=80, clients=["10.0.0.1"])
    assert service.clients == ["10.0.0.1/32"] and service.name is None
    with pytest.raises(ValueError):
        Service(port=80, clients=["not-a-cidr"])

    system = System(
        config=Config(), name="web", principal={"username": "a.b_c", "host": "h"}, service_account="default",
        conn_string="", proxy_rewrite={"enabled": False, "target": None}, containers=[container],
        identifier="abc", gitea_integration=False, services={"web": {"port": 80}},
    )
    assert system.name == "web-abc" and system.username_all_hyphens == "a-b-c"
    assert system.services["web"].name == "web-abc" and system.volumes[0]["volume_name"] == "data"
    (pod,) = system.render("pod.yaml")
    assert pod["spec"]["containers"][0]["image"] == "nginx:1"
    # the hand-built model's volumes reach the template (mounts grouped by container)
    assert pod["spec"]["containers"][0]["volumeMounts"] == [
        {"name": "data", "mountPath": "/srv", "subPath": "web", "readOnly": True}]
    assert pod["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    # service.yaml without the compiler's tycho_container finds the container by name
    (svc,) = system.render("service.yaml", {"service": system.services["web"]})
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == [80]


def test_modify_system():
    config = Config()
    modify = ModifySystem.parse_modify(config=config, guid="g1", labels={"name": "x"}, cpu="1", memory="2G")
    assert (modify.guid, modify.labels, modify.resources, modify.patch) == (
        "g1", {"name": "x"}, {"cpu": "1", "memory": "2G"}, True)
    assert modify.containers == [] and modify.config is config
    empty = ModifySystem.parse_modify(config=config, guid="g1", labels={}, cpu=None, memory=None)
    assert empty.patch is False and empty.resources == {}
    direct = ModifySystem(config, True, "g2", {}, {"cpu": "2"})
    assert repr(direct) == "name: g2 labels: {} resources: {'cpu': '2'}"

    class KubeContainer:  # like a kubernetes client model: private fields plus to_dict()
        def __init__(self):
            self._name, self._image = "web", "nginx:1"

        def to_dict(self):
            return {"name": self._name, "image": self._image}

    modify.containers = [KubeContainer()]
    (patch,) = TemplateUtils(config).render("patch.yaml", {"system_modify": modify})
    template = patch["spec"]["template"]
    assert template["metadata"]["labels"] == {"name": "x"}
    (container,) = template["spec"]["containers"]
    assert (container["name"], container["image"]) == ("web", "nginx:1")
    assert container["resources"]["limits"]["memory"] == "2G" and container["resources"]["requests"]["cpu"] == 1


# ---------------------------------------------------------------- core, kube, actions


def test_core_and_lazy_compute(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    core = Tycho(backplane="kubernetes", config="conf/tycho.yaml")
    assert core._compute is None  # not created in __init__
    compute = core.get_compute()
    assert isinstance(compute, KubernetesCompute) and core.get_compute() is compute
    assert Tycho.is_valid_backplane("kubernetes") and not Tycho.is_valid_backplane("docker-swarm")
    assert Tycho.supported_backplanes() == ["kubernetes", "docker-compose"]  # the original's list
    modify = core.parse_modify({"tycho-guid": "g", "labels": {"a": "b"}})
    assert modify.patch is True and modify.resources == {}


def test_kube_delegates_to_native_executor(monkeypatch):
    """Each operation of KubernetesCompute is one native call, with the system as the
    model's dict and the explicit namespace only: NAMESPACE and the rest of the namespace
    rule are the executor's (their outcome on a cluster: tests/kube/test_executor.py
    ``test_namespace_rules``; the count with the real calls: tests/packaging/test_crossings.py)."""
    from tycho import _native

    calls = []

    def kube_start(system, config=None, namespace=None, skip=None, to_plain=None):
        calls.append(("kube_start", system, namespace))
        assert type(system) in skip  # the model itself, converted in the call
        return {"name": system.name, "sid": system.identifier, "containers": {}, "conn_string": ""}

    def kube_status(name, username, config=None, namespace=None):
        calls.append(("kube_status", (name, username), namespace))
        return []

    monkeypatch.setattr(_native, "kube_start", kube_start, raising=False)
    monkeypatch.setattr(_native, "kube_status", kube_status, raising=False)
    monkeypatch.setenv("NAMESPACE", "apps")
    compute = KubernetesCompute(Config())
    system = Tycho().parse(start_request())
    result = compute.start(system)
    assert result["sid"] == system.identifier
    ((name, sent, namespace),) = calls  # the one call: no namespace look-up beside it
    assert name == "kube_start" and sent is system and namespace is None
    calls.clear()
    compute.namespace = "team"
    assert compute.status(username="jdoe") == []
    assert calls == [("kube_status", (None, "jdoe"), "team")]


@pytest.mark.parametrize(
    "resource, request_body, fragment",
    [
        (StartSystemResource, {}, "required property 'name'"),
        (StartSystemResource, {"name": "x", "principal": "{}", "system": {"services": {"x": {}}}}, "'image'"),
        (StartSystemResource, None, "must be of type object"),
        (StatusSystemResource, {"name": 5}, "must be of type string"),
        (DeleteSystemResource, {}, "required property 'name'"),
        (DeleteSystemResource, {"name": ["a"]}, "must be of type string"),
        (ModifySystemResource, {"labels": {}}, "required property 'tycho-guid'"),
    ],
)
def test_actions_reject_bad_input(resource, request_body, fragment):
    response = resource().post(request_body)
    assert set(response) == {"status", "result", "message"}
    assert response["status"] == "error"
    assert response["result"] == {"error": response["message"]}
    assert fragment in response["message"]


def test_create_response_shapes():
    resource = StartSystemResource()
    assert resource.create_response(result={"a": 1}, message="ok") == {"status": "success", "result": {"a": 1},
                                                                       "message": "ok"}
    error = resource.create_response(exception=TychoException("boom", "details"), message="ignored")
    assert error == {"status": "error", "result": {"error": "boom"}, "message": "boom"}
    from tycho.exceptions import StartException

    error = resource.create_response(exception=StartException("failed", ["line1\n", "line2\n"]))
    assert error["message"].startswith("failed line1")


# ---------------------------------------------------------------- client


def test_client_start_with_patched_request():
    with mock.patch.object(TychoClient, "request", return_value=START_RESULT) as request:
        client = TychoClient(url="http://tycho.example:5000")
        system = client.start(start_request())
    request.assert_called_once()
    assert request.call_args[0][0] == "start"
    assert isinstance(system, TychoSystem)
    assert system.identifier == "0123456789abcdef0123456789abcdef"
    assert system.name == START_RESULT["result"]["name"]
    assert system.conn_string == "" and system.status == "success"
    (service,) = system.services
    assert (service.name, service.ip_address, service.port, service.app_id) == (
        "jupyter-ds", "10.1.2.3", 31000, START_RESULT["result"]["name"])


def test_client_start_error_raises():
    error = {"status": "error", "result": {"error": "nope"}, "message": "nope"}
    with mock.patch.object(TychoClient, "request", return_value=error):
        with pytest.raises(TychoException, match="status:error"):
            TychoClient().start(start_request())


def test_client_status_delete_modify(capsys, caplog):
    rows = [{"name": "jupyter-ds-g", "app_id": "jupyter-ds", "sid": "g", "ip_address": "127.0.0.1", "port": "80",
             "creation_time": "1-2-2024 3:4:5", "username": "jdoe", "utilization": {"jupyter-ds": {"cpu": "1",
             "memory": "1G"}}, "workspace_name": "jupyter-ds", "is_ready": True}]
    replies = {
        "status": {"status": "success", "result": rows, "message": "m"},
        "delete": {"status": "success", "result": {}, "message": "Deleted system g"},
        "modify": {"status": "success", "result": {"patches": []}, "message": "Modified the system"},
    }
    with mock.patch.object(TychoClient, "request", side_effect=lambda service, req: replies[service]):
        client = TychoClient()
        status = client.status({"username": "jdoe"})
        assert isinstance(status, TychoStatus) and status.status == "success"
        (svc,) = status.services
        assert (svc.identifier, svc.app_id, svc.is_ready, svc.workspace_name, svc.username) == (
            "g", "jupyter-ds", True, "jupyter-ds", "jdoe")
        assert svc.total_util == {"gpu": 0, "cpu": 1000, "memory": "1.0", "ephemeralStorage": 0}
        with caplog.at_level(logging.DEBUG, logger="tycho"):
            assert client.delete({"name": "g"}) == replies["delete"]
        assert client.modify({"tycho-guid": "g"}) == replies["modify"]
        assert client.patch({"tycho-guid": "g"}) == replies["modify"]
    assert capsys.readouterr().out == ""  # delete prints nothing
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_client_status_error_has_no_services():
    reply = {"status": "error", "result": {"error": "x"}, "message": "x"}
    with mock.patch.object(TychoClient, "request", return_value=reply):
        status = TychoClient().status({})
    assert status.status == "error" and status.services == []


def test_client_helpers_and_cli_methods(capsys):
    client = TychoClient()
    assert client.url == "http://localhost:5000/system"
    assert client.parse_env("A=1\nB=x=y\n\nnot-a-setting\n") == {"A": "1", "B": "x=y"}
    assert client.format_name(f"a{os.sep}b") == "a-b"
    captured = {}

    def fake_request(self, service, request):
        captured[service] = request
        if service == "start":
            return START_RESULT
        if service == "status":
            return {"status": "success", "result": [], "message": ""}
        return {"status": "success", "result": {}, "message": ""}

    with mock.patch.object(TychoClient, "request", fake_request):
        client.up("web", {"services": {"web": {"image": "nginx", "ports": ["8080:80", 443]}}}, settings="A=1")
        client.list(None)
        client.list("guid", terse=True)
        client.down(["g1"])
    out = capsys.readouterr().out
    assert "SERVICE" in out and "0123456789abcdef" in out and "None running" in out and "g1" in out
    assert captured["start"]["services"] == {"web": {"port": 443}}
    assert captured["start"]["env"] == {"A": "1"} and captured["start"]["principal"] == '{"username": "renci"}'
    assert captured["status"] == {"name": "guid", "username": "renci"}
    assert captured["delete"] == {"name": "g1"}


class _ApiHandler(BaseHTTPRequestHandler):
    calls: list = []

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append((self.path, body))
        if self.path.endswith("/broken"):
            self.send_response(500)
            self.end_headers()
            return
        payload = json.dumps(START_RESULT if self.path.endswith("/start") else
                             {"status": "success", "result": [], "message": ""}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_client_rest_api(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ApiHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("REST_API", "true")
        client = TychoClient(url=f"http://127.0.0.1:{server.server_address[1]}")
        system = client.start(start_request())
        assert system.identifier == START_RESULT["result"]["sid"]
        assert client.status({"username": "jdoe"}).services == []
        assert _ApiHandler.calls[0][0] == "/system/start" and _ApiHandler.calls[0][1]["name"] == "jupyter-ds"
        assert _ApiHandler.calls[1] == ("/system/status", {"username": "jdoe"})
        with pytest.raises(TychoException, match="HTTP status 500"):
            client.request("broken", {})
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(TychoException, match="cannot reach"):
        client.request("status", {})


def test_tycho_service_utilization_totals():
    utilization = {
        "a": {"cpu": "500m", "memory": "1G"},
        "b": {"cpu": "2", "memory": "512Mi", "nvidia.com/gpu": "1", "ephemeral-storage": "2G"},
        "c": None,
        "d": {"cpu": "250m"},
        "e": {"memory": "1500M"},
    }
    service = TychoService(name="n", app_id="a", ip_address="1.2.3.4", port="80", sid="s", utilization=utilization)
    assert service.total_util == {"gpu": 1000, "cpu": 2750, "memory": "3.012", "ephemeralStorage": "2.0"}
    empty = TychoService(name="n", app_id="a", ip_address=None, port=None)
    assert empty.total_util == {"gpu": 0, "cpu": 0, "memory": "0.0", "ephemeralStorage": 0}
    assert empty.utilization == {} and empty.identifier is None and empty.is_ready is False
    assert "name: n" in repr(empty)


def test_tycho_system_and_status_objects():
    with pytest.raises(TychoException):
        TychoSystem(status="error", result={"error": "x"}, message="x")
    named_port = {"name": "n", "sid": "s", "containers": {"web": {"ip_address": None, "http": 8080}}}
    system = TychoSystem(status="success", result=named_port, message="")
    assert system.services[0].port == 8080 and system.conn_string == ""
    status = TychoStatus(status="success", result=[], message="m")
    assert status.services == [] and "status: success" in repr(status)


def test_client_factory_without_cluster(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    factory = TychoClientFactory()
    client = factory.get_client(default_url="http://tycho.example:8099")
    assert isinstance(client, TychoClient) and client.url == "http://tycho.example:8099/system"


def test_tycho_apps_needs_git(monkeypatch):
    apps = TychoApps("jupyter-ds")
    assert apps.app == "jupyter-ds" and apps.metadata == {} and apps.source_file == "docker-compose.yaml"
    monkeypatch.setattr(tycho.client.shutil, "which", lambda name: None)
    with pytest.raises(TychoException, match="git"):
        apps.getmetadata()


# ---------------------------------------------------------------- context

SPEC = {
    "version": "3.0",
    "services": {
        "jupyter-ds": {
            "image": "containers.renci.org/helxplatform/jupyter/datascience:v1",
            "ports": ["8888"],
            "deploy": {"resources": {"limits": {"cpus": "4", "memory": "8G", "ephemeralStorage": "3G"},
                                     "reservations": {"cpus": "1", "memory": "1G"}}},
        }
    },
}

RESOURCES = {"deploy": {"resources": {"limits": {"cpus": 2.0, "memory": "4G", "gpus": 0},
                                      "reservations": {"cpus": 1.0, "memory": "2G", "gpus": 0}}}}


def _fake_system(request):
    return TychoSystem(
        status="success",
        result={"name": f"{request['name']}-g", "sid": "g",
                "containers": {k: {"ip_address": None, "port-1": int(v["port"])}
                               for k, v in request["services"].items()},
                "conn_string": ""},
        message="",
    )


@pytest.fixture
def offline_context(monkeypatch):
    monkeypatch.setattr(TychoContext, "get_spec", lambda self, app_id: json.loads(json.dumps(SPEC)))
    monkeypatch.setattr(TychoContext, "get_settings", lambda self, app_id: "NB_UMASK=002\nTITLE=Hello=World\n")
    return TychoContext(product="braini")


def test_context_start_with_patched_start(offline_context, caplog):
    principal = Principal("jdoe", "secret-access", "secret-refresh")
    with caplog.at_level(logging.DEBUG):
        with mock.patch.object(TychoContext, "_start", side_effect=_fake_system) as start:
            system = offline_context.start(principal, "jupyter-ds", json.loads(json.dumps(RESOURCES)),
                                           "helx.example.org")
    assert isinstance(system, TychoSystem) and system.identifier == "g"
    (request,) = start.call_args[0]
    assert set(request) == {"name", "serviceaccount", "env", "system", "principal", "services"}
    assert request["name"] == "jupyter-ds" and request["serviceaccount"] is None
    assert request["env"] == {"NB_UMASK": "002", "TITLE": "Hello=World"}
    assert request["services"] == {"jupyter-ds": {"port": "8888", "clients": []}}
    assert json.loads(request["principal"]) == {
        "username": "jdoe", "access_token": "secret-access", "refresh_token": "secret-refresh",
        "host": "helx.example.org"}  # as the original's: extra_container_env only when given
    assert request["principal"] == json.dumps(json.loads(request["principal"]), indent=4)
    system_spec = request["system"]
    assert system_spec["security_context"] == {"fsGroup": 0}  # braini's jupyter-ds entry
    service = system_spec["services"]["jupyter-ds"]
    assert service["deploy"]["resources"]["limits"] == {"cpus": 2.0, "memory": "4G", "gpus": 0,
                                                        "ephemeralStorage": "3G"}
    assert "ephemeralStorage" not in service["deploy"]["resources"]["reservations"]
    assert service["ext"]["kube"]["livenessProbe"]["cmd"][0] == "pgrep"
    assert service["ext"]["kube"]["readinessProbe"]["httpGet"]["port"] == "{{ system_port }}"
    assert service["conn_string"] == "" and service["gitea_integration"] is False
    assert service["proxy_rewrite"] == {"enabled": True, "target": None}
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "secret-access" not in text and "secret-refresh" not in text
    # the registry entry was not changed by the launch
    assert "proxy-rewrite" not in offline_context.apps["jupyter-ds"]


def test_context_start_with_extra_container_env(offline_context):
    with mock.patch.object(TychoContext, "_start", side_effect=_fake_system) as start:
        offline_context.start(Principal("jdoe"), "jupyter-ds", RESOURCES, "h", {"SPECIAL": "1"})
    principal = json.loads(start.call_args[0][0]["principal"])
    assert principal["extra_container_env"] == {"SPECIAL": "1"} and principal["access_token"] is None


def test_context_start_through_patched_client(offline_context):
    with mock.patch.object(TychoClient, "request", return_value={
        "status": "success", "message": "",
        "result": {"name": "jupyter-ds-g", "sid": "g", "conn_string": "",
                   "containers": {"jupyter-ds": {"ip_address": None, "port-1": 8888}}}}) as request:
        system = offline_context.start(Principal("jdoe"), "jupyter-ds", RESOURCES, "h")
    assert request.call_args[0][0] == "start" and system.services[0].port == 8888


def test_context_start_missing_service_fails(offline_context):
    def no_services(request):
        return TychoSystem(status="success", result={"name": "x", "sid": "g", "containers": {}, "conn_string": ""},
                           message="")

    with mock.patch.object(TychoContext, "_start", side_effect=no_services):
        with pytest.raises(TychoException, match="expected"):
            offline_context.start(Principal("jdoe"), "jupyter-ds", RESOURCES, "h")


def test_context_subclass_override(monkeypatch):
    monkeypatch.setattr(TychoContext, "get_spec", lambda self, app_id: json.loads(json.dumps(SPEC)))
    monkeypatch.setattr(TychoContext, "get_settings", lambda self, app_id: "")

    class RecordingContext(TychoContext):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.requests = []

        def _start(self, request):
            self.requests.append(request)
            return _fake_system(request)

    context = RecordingContext(product="common")
    system = context.start(Principal("u"), "jupyter-ds", RESOURCES, "h")
    assert system.identifier == "g" and context.requests[0]["name"] == "jupyter-ds"

    class QuietClient(TychoClient):
        def request(self, service, request):
            return {"status": "success", "result": [], "message": service}

    assert QuietClient().status({}).message == "status"


def test_context_status_delete_update_use_client(offline_context):
    with mock.patch.object(TychoClient, "request", side_effect=lambda s, r: {
            "status": "success", "result": [] if s == "status" else {}, "message": s}) as request:
        assert offline_context.status({"username": "u"}).message == "status"
        assert offline_context.delete({"name": "g"})["message"] == "delete"
        assert offline_context.update({"tycho-guid": "g", "labels": {}})["message"] == "modify"
    assert [c[0][0] for c in request.call_args_list] == ["status", "delete", "modify"]


def test_principal_repr_hides_tokens():
    principal = Principal("jdoe", "AAA", "RRR")
    assert (principal.username, principal.access_token, principal.refresh_token) == ("jdoe", "AAA", "RRR")
    assert "AAA" not in repr(principal) and "RRR" not in repr(principal)


def _packaged_products():
    """Every context of the packaged registry that offers apps (not the mixin-only ones)."""
    import yaml

    with open(os.path.join(os.path.dirname(tycho.context.__file__), "conf", "app-registry.yaml")) as f:
        contexts = yaml.safe_load(f)["contexts"]
    return [name for name in contexts if name not in ("sys", "sys-additions")]


@pytest.mark.parametrize("product", _packaged_products())
def test_packaged_registry_products(product):
    context = TychoContext(product=product)
    assert context.apps
    for app_id, app in context.apps.items():
        assert app["spec"].startswith("https://") and app["spec"].endswith(f"/{app_id}/docker-compose.yaml")
        assert app["icon"] == app["spec"].rsplit("/", 1)[0] + "/icon.png"
        assert app["name"] and "services" in app and "$" not in app["spec"]


def test_packaged_registry_semantics():
    # The original's facts (tests/parity/test_registry_parity.py compares every context in full).
    braini = TychoContext(product="braini")  # extends common and blackbalsam (which extends common)
    assert list(braini.apps) == ["jupyter-ds", "filebrowser", "webtop-octave", "blackbalsam", "imagej", "napari",
                                 "cloud-top", "scout"]
    assert braini.apps["imagej"]["ext"] == {"kube": {"readinessProbe": "none"}}  # sys mixin overrides defaults
    assert braini.apps["jupyter-ds"]["ext"]["kube"]["livenessProbe"] == {"cmd": ["pgrep", "jupyter"], "delay": 5,
                                                                       "period": 5}
    assert braini.apps["jupyter-ds"]["securityContext"] == {"fsGroup": 0}
    assert braini.apps["blackbalsam"]["securityContext"] == {"fsGroup": 0}
    assert braini.apps["blackbalsam"]["serviceAccount"] == "spark"
    root = {"fsGroup": 0, "runAsUser": 0, "runAsGroup": 0}
    assert TychoContext(product="bdc").apps["webtop-octave"]["securityContext"] == root
    heal = TychoContext(product="heal")  # heal -> common
    assert list(heal.apps) == ["jupyter-ds", "filebrowser", "webtop-octave"]
    assert "securityContext" not in heal.apps["webtop-octave"]  # bdc's per-app entry applies to bdc only
    assert TychoContext(product="restartr").apps["sas-studio"]["conn_string"] == "SASStudio"
    assert TychoContext(product="scidas").apps["nextflow"]["env"] == {"PVC_NAME": "$STDNFS"}
    testing = TychoContext(product="testing")
    assert testing.apps["nginx"]["proxy-rewrite"] == {"enabled": True, "target": "/"}
    assert list(TychoContext(product="tracs").apps) == ["atlas", "rstudio-server"]
    sandbox = TychoContext(product="eduhelx-sandbox")
    assert list(sandbox.apps) == ["jupyter-education", "rstudio-server", "webtop"]
    assert sandbox.apps["rstudio-server"]["securityContext"] == root
    for brand, base in [("eduhelx-student", "eduhelx"), ("eduhelx-professor", "eduhelx"),
                        ("eduhelx-dev-student", "eduhelx-dev"), ("eduhelx-dev-professor", "eduhelx-dev")]:
        assert TychoContext(product=brand).apps == TychoContext(product=base).apps, brand
    with pytest.raises(ContextException, match="undefined product"):
        TychoContext(product="no-such-product")


def test_null_context_and_factory(monkeypatch):
    monkeypatch.setattr(ContextFactory, "_state", {})
    factory = ContextFactory()
    null = factory.get(product="braini", context_type="null")
    assert isinstance(null, NullContext)
    assert ContextFactory().get(product="bdc", context_type="null") is null  # shared state, one per type
    assert ContextFactory().contexts is factory.contexts
    status = null.status({"username": "x"})
    assert len(status.services) == 5
    row = status.services[0]
    assert (row.app_id, row.ip_address, row.port, row.creation_time) == ("jupyter-ds", "x.y.z.m", "8080", "time")
    assert row.name == f"jupyter-ds-{row.identifier}"
    assert null.delete({"name": "x"}) is None
    assert null.update({"tycho-guid": "x"})["status"] == "success"
    for system in (null.start(Principal("u"), "imagej"),
                   null.start(Principal("u"), "imagej", RESOURCES, "h"),
                   null.start(Principal("u"), "imagej", RESOURCES, "h", {"A": "1"})):
        assert isinstance(system, TychoSystem)
        assert system.name == "ImageJ Viewer" and system.services[0].port == 8080 and system.services[0].ip_address == "x.y.z"
    with pytest.raises(ContextException):
        ContextFactory().get(product="common", context_type="bogus")


def test_live_context_from_factory(monkeypatch):
    monkeypatch.setattr(ContextFactory, "_state", {})
    live = ContextFactory().get(product="eduhelx", context_type="live")
    assert type(live) is TychoContext and "jupyter-education" in live.apps
    assert ContextFactory().get(product="eduhelx", context_type="live") is live
