"""Compose service keys: every top-level service key of the compose specification is
either converted (asserted in the rendered objects) or warned about on the Python logger
``tycho.model`` naming the service and key; ordinary compose files in the style of the
specification's examples render to objects that kubernetes-validate accepts strictly;
strict mode (config switch, CLI ``--strict``) makes a warning an error; the CLI prints
the warnings and reads ``env_file``; appstore's path through ``TychoContext.start``
starts a converted system on the (emulated) cluster; HeLx's specs that use keys the
original ignored change only as COMPATIBILITY.md says."""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import string
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from cluster import cluster_fixture  # noqa: F401 - the `cluster` fixture
from corpus import helx_corpus
from tycho import _native
from tycho.context import Principal, TychoContext
from tycho.exceptions import TychoException

VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
GUID = "0123456789abcdef0123456789abcdef"
UID = "00000000-0000-4000-8000-000000000000"
ROOT = Path(__file__).resolve().parents[2]

# Every top-level key of a service in the compose specification (services top-level
# element, compose-spec 2025), written out from the specification.
SPEC_SERVICE_KEYS = """
annotations attach build blkio_config cpu_count cpu_percent cpu_shares cpu_period cpu_quota
cpu_rt_runtime cpu_rt_period cpus cpuset cap_add cap_drop cgroup cgroup_parent command configs
container_name credential_spec depends_on deploy develop device_cgroup_rules devices dns
dns_opt dns_search domainname driver_opts entrypoint env_file environment expose extends
external_links extra_hosts gpus group_add healthcheck hostname image init ipc isolation labels
label_file links logging mac_address mem_limit mem_reservation mem_swappiness memswap_limit
models network_mode networks oom_kill_disable oom_score_adj pid pids_limit platform ports
post_start pre_stop privileged profiles provider pull_policy read_only restart runtime scale
secrets security_opt shm_size stdin_open stop_grace_period stop_signal storage_opt sysctls
tmpfs tty ulimits use_api_socket user userns_mode uts volumes volumes_from working_dir
""".split()

# A plausible value for each key (as a compose file would hold it).
VALUES = {
    "annotations": {"com.example.a": "1"}, "attach": False, "build": "./dir",
    "blkio_config": {"weight": 300}, "cpu_count": 2, "cpu_percent": 50, "cpu_shares": 512,
    "cpu_period": 100000, "cpu_quota": 50000, "cpu_rt_runtime": "400ms", "cpu_rt_period": "1400us",
    "cpus": 1.5, "cpuset": "0-1", "cap_add": ["NET_BIND_SERVICE"], "cap_drop": ["ALL"], "cgroup": "host",
    "cgroup_parent": "m-executor-abcd", "command": ["serve", "--verbose"], "configs": ["my_config"],
    "container_name": "my-web", "credential_spec": {"file": "c.json"}, "depends_on": ["db"],
    "deploy": {"replicas": 2, "resources": {"limits": {"cpus": "1", "memory": "1G"}}},
    "develop": {"watch": [{"action": "sync", "path": "./web", "target": "/src"}]},
    "device_cgroup_rules": ["c 1:3 mr"], "devices": ["/dev/ttyUSB0:/dev/ttyUSB0"], "dns": "8.8.8.8",
    "dns_opt": ["use-vc"], "dns_search": "example.com", "domainname": "foo.com",
    "driver_opts": {"com.docker.network.bridge.host_binding_ipv4": "127.0.0.1"},
    "entrypoint": ["/bin/sh", "-c"], "env_file": ".env", "environment": {"RACK_ENV": "development"},
    "expose": ["3000"], "extends": {"file": "common.yml", "service": "webapp"},
    "external_links": ["redis_1"], "extra_hosts": ["somehost=162.242.195.82"], "gpus": "all",
    "group_add": ["mail"], "healthcheck": {"test": ["CMD", "curl", "-f", "http://localhost"],
                                           "interval": "1m30s", "timeout": "10s", "retries": 3,
                                           "start_period": "40s"},
    "hostname": "web", "image": "nginx:1.27", "init": True, "ipc": "shareable", "isolation": "default",
    "labels": {"com.example.department": "finance"}, "label_file": "./app.labels", "links": ["db"],
    "logging": {"driver": "syslog"}, "mac_address": "02:42:ac:11:65:43", "mem_limit": "1g",
    "mem_reservation": "512m", "mem_swappiness": 0, "memswap_limit": "2g", "models": ["llm"],
    "network_mode": "host", "networks": ["front"], "oom_kill_disable": True, "oom_score_adj": 500,
    "pid": "host", "pids_limit": 10, "platform": "linux/amd64", "ports": ["8080:80", "53:53/udp"],
    "post_start": [{"command": "./init.sh"}], "pre_stop": [{"command": "./stop.sh"}],
    "privileged": True, "profiles": ["debug"], "provider": {"type": "awesomecloud"},
    "pull_policy": "always", "read_only": True, "restart": "always", "runtime": "runc", "scale": 3,
    "secrets": ["server-certificate"], "security_opt": ["label=user:USER"], "shm_size": "64m",
    "stdin_open": True, "stop_grace_period": "1m30s", "stop_signal": "SIGUSR1",
    "storage_opt": {"size": "20G"}, "sysctls": {"net.core.somaxconn": 1024}, "tmpfs": ["/run", "/tmp:size=32m"],
    "tty": True, "ulimits": {"nproc": 65535}, "use_api_socket": True, "user": "1000:2000",
    "userns_mode": "host", "uts": "host", "volumes": ["pvc://data/web:/data:ro"],
    "volumes_from": ["other"], "working_dir": "/srv",
}


def pod_of(objects):
    return next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]


def container_of(objects, name="web"):
    return next(c for c in pod_of(objects)["spec"]["containers"] if c["name"] == name)


def service_of(objects):
    return next(o for o in objects if o["kind"] == "Service")


# Keys converted to Kubernetes fields: a check of the rendered objects for each.
CONVERTED = {
    "cap_add": lambda o: container_of(o)["securityContext"]["capabilities"]["add"] == ["NET_BIND_SERVICE"],
    "cap_drop": lambda o: container_of(o)["securityContext"]["capabilities"]["drop"] == ["ALL"],
    "command": lambda o: container_of(o)["args"] == ["serve", "--verbose"],
    "deploy": lambda o: container_of(o)["resources"]["limits"] == {"cpu": "1", "memory": "1G"},
    "entrypoint": lambda o: container_of(o)["command"] == ["/bin/sh", "-c"],
    "environment": lambda o: {"name": "RACK_ENV", "value": "development"} in container_of(o)["env"],
    "expose": lambda o: container_of(o)["ports"] == [{"containerPort": 3000, "protocol": "TCP"}],
    "healthcheck": lambda o: container_of(o)["livenessProbe"] == {
        "exec": {"command": ["curl", "-f", "http://localhost"]}, "initialDelaySeconds": 40,
        "periodSeconds": 90, "failureThreshold": 3, "timeoutSeconds": 10},
    "image": lambda o: container_of(o)["image"] == "nginx:1.27",
    "labels": lambda o: pod_of(o)["metadata"]["labels"]["com.example.department"] == "finance",
    "ports": lambda o: [(p["port"], p["protocol"]) for p in service_of(o)["spec"]["ports"]]
    == [(80, "TCP"), (53, "UDP")],
    "read_only": lambda o: container_of(o)["securityContext"]["readOnlyRootFilesystem"] is True,
    "shm_size": lambda o: {"name": "tycho-shm-0", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}
    in pod_of(o)["spec"]["volumes"]
    and {"name": "tycho-shm-0", "mountPath": "/dev/shm"} in container_of(o)["volumeMounts"],
    "tmpfs": lambda o: {"name": "tycho-tmpfs-0-1", "emptyDir": {"medium": "Memory", "sizeLimit": "32Mi"}}
    in pod_of(o)["spec"]["volumes"]
    and {"name": "tycho-tmpfs-0-0", "mountPath": "/run"} in container_of(o)["volumeMounts"],
    "user": lambda o: (container_of(o)["securityContext"]["runAsUser"],
                       container_of(o)["securityContext"]["runAsGroup"]) == (1000, 2000),
    "volumes": lambda o: {"name": "data", "mountPath": "/data", "subPath": "web", "readOnly": True}
    in container_of(o)["volumeMounts"],
    "working_dir": lambda o: container_of(o)["workingDir"] == "/srv",
}


def request(services, env=None, top=None):
    system = {"services": services}
    system.update(top or {})
    return {
        "name": "web",
        "principal": json.dumps({"username": "jdoe"}),
        "serviceaccount": "default",
        "env": env if env is not None else {},
        "system": system,
        "services": {name: {"port": "80"} for name in services},
    }


def compile_request(req, config=None):
    saved = {k: os.environ.pop(k) for k in ("DEV_PHASE", "TYCHO_APP_RUN_AS_USER", "NFSRODS_UID") if k in os.environ}
    try:
        return _native.compile_request(copy.deepcopy(req), identifier=GUID, deployment_uid=UID, config=config)
    finally:
        os.environ.update(saved)


def model_warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "tycho.model" and r.levelno == logging.WARNING]


def assert_valid(objects):
    assert objects
    for obj in objects:
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{obj['kind']} invalid for {version}: {e.message} at {list(e.path)}\n"
                            f"{json.dumps(obj, indent=1)}")


def test_the_key_list_is_complete():
    assert len(SPEC_SERVICE_KEYS) == len(set(SPEC_SERVICE_KEYS)) == 92
    assert set(VALUES) == set(SPEC_SERVICE_KEYS)


@pytest.mark.parametrize("key", SPEC_SERVICE_KEYS)
def test_every_compose_service_key_is_converted_or_warned(key, caplog):
    service = {"image": "nginx:1.27", key: copy.deepcopy(VALUES[key])}
    with caplog.at_level(logging.WARNING):
        objects = compile_request(request({"web": service}))
    mine = [w for w in model_warnings(caplog) if f"'{key}" in w]
    if key in CONVERTED:
        assert CONVERTED[key](objects), json.dumps(objects, indent=1)
        # deploy.replicas is warned about even though deploy.resources is converted.
        assert not [w for w in mine if f"'{key}'" in w], mine
    else:
        assert len(mine) == 1, model_warnings(caplog)
        assert mine[0].startswith(f"service 'web': '{key}"), mine[0]
        assert "is ignored" in mine[0]
    assert_valid(objects)


def test_the_warning_text(caplog):
    with caplog.at_level(logging.WARNING):
        compile_request(request({"web": {"image": "nginx", "restart": "always", "deploy": {"replicas": 3}}}))
    warnings = model_warnings(caplog)
    assert "service 'web': 'restart' is ignored: Deployments always restart" in warnings
    assert any(w.startswith("service 'web': 'deploy.replicas' is ignored: a system runs one pod") for w in warnings)


def test_unknown_keys_and_undefined_variables_warn(caplog):
    services = {"web": {"image": "nginx:{{ tag }}", "enviroment": ["A=1"]}}
    with caplog.at_level(logging.WARNING):
        objects = compile_request(request(services, env={"other": "x", "greeting": "{{ nowhere }}"},
                                          top={"networks": {"default": {}}, "x-meta": 1}))
    warnings = model_warnings(caplog)
    assert container_of(objects)["image"] == "nginx:"  # renders empty, as the original
    assert "service 'web': 'enviroment' is ignored: it is not a compose service key (a typo?)" in warnings
    assert any("'image' uses the undefined template variable 'tag'" in w for w in warnings), warnings
    assert any("'settings.greeting' uses the undefined template variable 'nowhere'" in w for w in warnings)
    assert any(w.startswith("compose document: 'networks' is ignored") for w in warnings)
    assert not any("x-meta" in w for w in warnings)


def test_strict_config_makes_a_warning_an_error():
    config = yaml.safe_load((ROOT / "python" / "tycho" / "conf" / "tycho.yaml").read_text())
    assert config["tycho"]["compute"]["system"]["strict"] is False
    config["tycho"]["compute"]["system"]["strict"] = True
    with pytest.raises(TychoException) as err:
        compile_request(request({"web": {"image": "nginx", "restart": "always"}}), config=config)
    assert "service 'web': 'restart' is ignored" in str(err.value)
    # Without anything to warn about, strict changes nothing.
    plain = request({"web": {"image": "nginx", "ports": ["80"]}})
    assert compile_request(plain, config=config) == compile_request(plain)


def test_labels_cannot_clash_with_tychos(caplog):
    with caplog.at_level(logging.WARNING):
        objects = compile_request(request({"web": {"image": "nginx", "labels": ["tier=web", "executor=me",
                                                                                   "tycho-guid=x"]}}))
    labels = pod_of(objects)["metadata"]["labels"]
    assert labels["tier"] == "web" and labels["executor"] == "tycho" and labels["tycho-guid"] == GUID
    assert sum("is dropped: tycho sets this label itself" in w for w in model_warnings(caplog)) == 2


def test_udp_port_protocol_and_system_port():
    req = request({"dns": {"image": "coredns", "ports": ["53:53/udp"], "expose": ["53/udp"],
                           "environment": ["PORT={{ system_port }}"]}})
    req["name"] = "dns"
    objects = compile_request(req)
    c = container_of(objects, "dns")
    assert c["ports"] == [{"containerPort": 53, "protocol": "UDP"}]
    assert {"name": "PORT", "value": "53"} in c["env"]  # not 53/udp
    assert service_of(objects)["spec"]["ports"] == [{"name": "port-1", "port": 53, "protocol": "UDP", "targetPort": 53}]
    assert_valid(objects)


# Compose files in the style of the compose specification's examples.
SPEC_STYLE = {
    "web-and-cache": {
        "web": {"image": "example/webapp", "command": "bundle exec thin -p 3000", "working_dir": "/code",
                "ports": ["3000:3000"], "environment": {"RACK_ENV": "development", "SHOW": "true"},
                "healthcheck": {"test": "curl -f http://localhost:3000/ || exit 1", "interval": "30s",
                                "timeout": "5s", "retries": 5},
                "labels": {"com.example.description": "Accounting webapp"}},
        "redis": {"image": "redis:7-alpine", "expose": ["6379"], "user": "999:999", "read_only": True,
                  "tmpfs": "/data", "cap_drop": ["ALL"], "restart": "unless-stopped"},
    },
    "dns-and-proxy": {
        "dns": {"image": "coredns/coredns:1.11", "ports": ["53:53/udp", "53:53/tcp"], "cap_add": ["NET_BIND_SERVICE"],
                "cap_drop": ["ALL"]},
        "proxy": {"image": "nginx:1.27", "ports": ["8080:80"], "shm_size": "128m",
                  "depends_on": {"dns": {"condition": "service_started"}},
                  "healthcheck": {"test": ["CMD-SHELL", "wget -q -O- localhost"], "start_period": "5s"}},
    },
}


@pytest.mark.parametrize("name", sorted(SPEC_STYLE))
@pytest.mark.parametrize("ambassador", [False, True])
def test_spec_style_compose_files_validate(name, ambassador):
    req = request(SPEC_STYLE[name])
    objects = _native.compile_request(copy.deepcopy(req), identifier=GUID, deployment_uid=UID, ambassador=ambassador)
    assert_valid(objects)


def test_inputs_without_new_keys_render_as_before():
    """The parsed model of a request without the new keys has no new fields, so the
    objects are the ones the parity suites compare with the original."""
    req = request({"web": {"image": "nginx", "ports": ["8080:80"], "expose": ["80"],
                           "environment": ["A=1"], "volumes": ["pvc://data:/data"]}})
    plain = _native.parse_system(copy.deepcopy(req), identifier=GUID)
    (container,) = plain["containers"]
    assert "protocol" not in container["ports"][0] and "timeout" not in json.dumps(container["liveness_probe"])
    assert "pod_labels" not in plain and "memory_volumes" not in plain and "warnings" not in plain
    assert set(container.get("compose", {})) <= {"host_ports"}
    pod = pod_of(compile_request(req))
    (c,) = pod["spec"]["containers"]
    assert "args" not in c and "workingDir" not in c and "capabilities" not in json.dumps(c)
    assert not any("emptyDir" in v for v in pod["spec"].get("volumes", []))


# ------------------------------------------------------------------ the CLI


def tycho(*args, cwd=None):
    exe = shutil.which("tycho") or str(Path(sys.executable).parent / "tycho")
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_cli_prints_warnings_reads_env_file_and_strict_fails(tmp_path):
    (tmp_path / "web.env").write_text("# comment\nFROM_FILE=file\nBOTH=file\n")
    compose = {"services": {"web": {"image": "nginx", "restart": "always", "env_file": "web.env",
                                    "environment": {"BOTH": "compose"}, "ports": ["80"]}}}
    (tmp_path / "docker-compose.yaml").write_text(yaml.safe_dump(compose))
    out = tycho("render", "-f", str(tmp_path / "docker-compose.yaml"), "-o", "json", "--guid", GUID)
    assert out.returncode == 0, out.stderr
    assert "tycho: warning: service 'web': 'restart' is ignored: Deployments always restart" in out.stderr.splitlines()
    assert "env_file" not in out.stderr
    objects = json.loads(out.stdout)["items"]
    env = {e["name"]: e.get("value") for e in container_of(objects)["env"]}
    assert env["FROM_FILE"] == "file" and env["BOTH"] == "compose"
    strict = tycho("render", "-f", str(tmp_path / "docker-compose.yaml"), "--strict")
    assert strict.returncode == 1 and strict.stdout == ""
    assert strict.stderr.strip().splitlines() == [
        "tycho: error: service 'web': 'restart' is ignored: Deployments always restart (strict mode)"]


def test_cli_missing_env_file_is_an_error(tmp_path):
    compose = {"services": {"web": {"image": "nginx", "env_file": "missing.env"}}}
    (tmp_path / "docker-compose.yaml").write_text(yaml.safe_dump(compose))
    out = tycho("render", "-f", str(tmp_path / "docker-compose.yaml"))
    assert out.returncode == 1 and "env_file" in out.stderr and "missing.env" in out.stderr


# ------------------------------------------------------------------ HeLx specs

CORPUS = helx_corpus()
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(),
                                  reason=f"HeLx's app catalogue is not at {CORPUS} (set TYCHO_HELX_CORPUS)")


def _spec(app, settings):
    """The app's spec with the settings substituted for ``${NAME}`` (as the registry does)."""
    for root in (CORPUS, CORPUS / "helx-apps"):
        path = root / "app-specs" / app / "docker-compose.yaml"
        if path.exists():
            return yaml.safe_load(string.Template(path.read_text()).safe_substitute(settings))
    pytest.skip(f"{app} is not in {CORPUS}")


@needs_corpus
@pytest.mark.parametrize("app, key, dotted", [("jupyter-lab", "user", "user"),
                                              ("jupyter-hail", "replicas", "deploy.replicas")])
def test_helx_specs_objects_change_only_as_documented(app, key, dotted, caplog):
    """COMPATIBILITY.md row 'compose keys the original ignored': jupyter-lab's
    `user: "jovyan:1136"` is a name (no numeric runAsUser) and jupyter-hail's
    deploy.replicas has no counterpart in one pod: each is a warning, the objects are
    the ones without the key."""
    env = {"helx_registry": "r.example", "cluster_worker_replicas": "2", "cluster_worker_cores": "1",
           "cluster_worker_memory": "1G", "app_id": app, "spark_master_port": "7077",
           "spark_worker_memory": "1G", "spark_worker_cores": "1"}
    spec = _spec(app, env)
    without = copy.deepcopy(spec)
    for service in without["services"].values():
        service.pop("user", None)
        (service.get("deploy") or {}).pop("replicas", None)
    names = {n: {"port": "8888"} for n in spec["services"]}
    req = {"name": app, "principal": json.dumps({"username": "jdoe"}), "env": env, "system": spec, "services": names}
    with caplog.at_level(logging.WARNING):
        mine = compile_request(req)
    assert any(f"'{dotted}'" in w for w in model_warnings(caplog)), model_warnings(caplog)
    assert mine == compile_request(dict(req, system=without))


# ------------------------------------------------------------------ appstore's path


APPSTORE_SPEC = {
    "version": "3.0",
    "services": {
        "jupyter-ds": {
            "image": "jupyter/datascience-notebook:latest",
            "entrypoint": ["start.sh"],
            "command": ["jupyter", "lab"],
            "working_dir": "/home/jovyan",
            "user": "1000:100",
            "ports": ["8888"],
            "healthcheck": {"test": ["CMD", "true"], "interval": "20s"},
            "restart": "always",
            "deploy": {"resources": {"limits": {"cpus": "1", "memory": "1G"}}},
        }
    },
}


def test_appstore_start_through_the_context(cluster, monkeypatch, caplog):
    """appstore's call, TychoContext.start, against the emulated cluster: the converted
    keys reach the Deployment, the ignored one is a WARNING on tycho.model."""
    monkeypatch.setattr(TychoContext, "get_spec", lambda self, app_id: copy.deepcopy(APPSTORE_SPEC))
    monkeypatch.setattr(TychoContext, "get_settings", lambda self, app_id: "NB_UMASK=002\n")
    context = TychoContext(product="braini")
    resources = {"deploy": {"resources": {"limits": {"cpus": 1.0, "memory": "1G", "gpus": 0},
                                          "reservations": {"cpus": 0.5, "memory": "512M", "gpus": 0}}}}
    with caplog.at_level(logging.WARNING):
        system = context.start(Principal("jdoe"), "jupyter-ds", resources, "h.example.org")
    cluster.guids.append(system.identifier)
    (deployment,) = cluster.of_kind(system.identifier, "Deployment")
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["start.sh"] and c["args"] == ["jupyter", "lab"]
    assert c["workingDir"] == "/home/jovyan"
    assert (c["securityContext"]["runAsUser"], c["securityContext"]["runAsGroup"]) == (1000, 100)
    # braini's registry gives jupyter-ds an ext.kube livenessProbe: it wins over healthcheck.
    assert c["livenessProbe"]["exec"]["command"][0] == "pgrep"
    assert "service 'jupyter-ds': 'healthcheck' is ignored: ext.kube.livenessProbe is given" in model_warnings(caplog)
    assert "service 'jupyter-ds': 'restart' is ignored: Deployments always restart" in model_warnings(caplog)
