"""ACCESS_TOKEN by Secret reference, and the container env today's appstore expects.

* appstore's current call path: ``ContextFactory().get(...)`` over a registry served on
  127.0.0.1, then ``start(principal, app_id, resources, host, {"GRADER_API_URL": ...})``
  with a session-id-like token, against the kube emulator: the token Secret, the
  secretKeyRef, the env order, and the token in no other object and no log record;
  delete leaves no Secret.
* ``tycho.compute.system.access_token_env``: ``secret`` (default), ``literal``, ``off``.
* A cluster that forbids creating Secrets: a StartException naming the RBAC rule and the
  setting, nothing left behind. An API server that echoes the token in an error: the
  message and the logs show ``<redacted>``.
* ``tycho render``: the Secret with ``<redacted>`` unless ``--show-secrets``.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from cluster import cluster_fixture, compute, start_request  # noqa: F401 - fixture and helpers
from kube_emulator import kube_emulator, kube_emulator_session  # noqa: F401 - pytest fixtures
from tycho import _native
from tycho.context import ContextFactory, Principal, TychoContext
from tycho.core import Tycho
from tycho.exceptions import StartException
from tycho.kube import KubernetesCompute

# What appstore passes as the access token: the Django session key (32 chars of [a-z0-9]).
SESSION_ID = "k3v9q0x2m7c1r5t8w4z6y0b2n4h6j8l1"
GRADER = "http://grader.example.org/api/v1"
HOST = "helx.example.org"

REGISTRY = """
api: Tycho
version: 1.0.0
repositories:
  apps:
    url: apps
settings:
  hub: docker.io
contexts:
  eduhelx-smoke:
    name: Smoke
    apps:
      jupyter-ds:
        name: Jupyter Data Science
        description: Notebooks
        details: notebooks
        services:
          jupyter-ds: 8888
        count: 1
"""

SPEC = """
version: "3.0"
services:
  jupyter-ds:
    image: "{{ hub }}/jupyter/datascience-notebook:2024-01-01"
    ports:
      - "8888"
    environment:
      - FROM_COMPOSE=yes
"""

RESOURCES = {"deploy": {"resources": {"limits": {"cpus": 1.0, "memory": "2G", "gpus": 0},
                                      "reservations": {"cpus": 0.5, "memory": "1G", "gpus": 0}}}}


@pytest.fixture
def registry_url(tmp_path):
    root = tmp_path / "served"
    (root / "registry" / "apps" / "jupyter-ds").mkdir(parents=True)
    (root / "registry" / "app-registry.yaml").write_text(REGISTRY)
    (root / "registry" / "app-defaults.yaml").write_text("{}\n")
    (root / "registry" / "apps" / "jupyter-ds" / "docker-compose.yaml").write_text(SPEC)
    (root / "registry" / "apps" / "jupyter-ds" / ".env").write_text("NB_UMASK=002\n")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/registry"
    finally:
        server.shutdown()
        server.server_close()


def b64(text):
    return base64.b64encode(text.encode()).decode()


def assert_token_absent(text, token=SESSION_ID):
    assert token not in text and b64(token) not in text


def names(container):
    return [e["name"] for e in container["env"]]


def by_name(container, name):
    (entry,) = [e for e in container["env"] if e["name"] == name]
    return entry


def test_appstore_call_path_delivers_the_token_by_secret_reference(cluster, registry_url, caplog):
    caplog.set_level(logging.DEBUG)
    ContextFactory._state.clear()
    try:
        tycho = ContextFactory().get(context_type="live", product="eduhelx-smoke", tycho_config_url=registry_url)
        assert type(tycho) is TychoContext
        principal = Principal("jdoe", SESSION_ID, None)
        system = tycho.start(principal, "jupyter-ds", RESOURCES, HOST, {"GRADER_API_URL": GRADER})
    finally:
        ContextFactory._state.clear()
    guid = system.identifier
    cluster.guids.append(guid)
    objects = cluster.objects(guid)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == ["Deployment", "Secret", "Service"]

    (secret,) = cluster.of_kind(guid, "Secret")
    (deployment,) = cluster.of_kind(guid, "Deployment")
    secret_name = f"jupyter-ds-{guid}-tokens"
    assert secret["metadata"]["name"] == secret_name
    assert secret["type"] == "Opaque"
    assert secret["data"] == {"access_token": b64(SESSION_ID)}
    labels = secret["metadata"]["labels"]
    assert labels["tycho-guid"] == guid and labels["executor"] == "tycho" and labels["username"] == "jdoe"
    (owner,) = secret["metadata"]["ownerReferences"]
    assert owner["kind"] == "Deployment" and owner["uid"] == deployment["metadata"]["uid"]
    assert owner["name"] == f"jupyter-ds-{guid}"

    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ref = {"secretKeyRef": {"name": secret_name, "key": "access_token"}}
    assert by_name(container, "ACCESS_TOKEN") == {"name": "ACCESS_TOKEN", "valueFrom": ref}
    # The principal's own field (1.17.3 wrote it literally) reads the Secret too.
    assert by_name(container, "access_token") == {"name": "access_token", "valueFrom": ref}
    assert by_name(container, "GRADER_API_URL") == {"name": "GRADER_API_URL", "value": GRADER}
    # appstore's order: settings, GUID, USER_NAME, USER, ACCESS_TOKEN, extra_container_env,
    # NB_PREFIX, FB_BASEURL, HOST, then the principal's scalar fields (refresh_token None: left out).
    env_names = names(container)
    assert env_names[0] == "FROM_COMPOSE" and "NB_UMASK" in env_names
    tail = env_names[env_names.index("GUID"):]
    assert tail == ["GUID", "USER_NAME", "USER", "ACCESS_TOKEN", "GRADER_API_URL", "NB_PREFIX", "FB_BASEURL",
                    "HOST", "username", "access_token", "host"]
    assert "refresh_token" not in env_names and "extra_container_env" not in env_names

    # The token is in the Secret and nowhere else: not in any other stored object, not in
    # the start's result, not in any log record.
    for o in cluster.control.objects():
        if o["kind"] == "Secret" and o["metadata"]["name"] == secret_name:
            continue
        assert_token_absent(json.dumps(o))
    assert_token_absent(json.dumps([s.__dict__ for s in system.services], default=str))
    records = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "tycho.kube" in records and "tycho.context" in records
    assert_token_absent(records)

    # Status and modify ignore the Secret; delete (and the garbage collector) removes it.
    (row,) = compute().status(name=guid)
    assert row["sid"] == guid
    tycho.delete({"name": guid})
    assert cluster.objects(guid) == []
    assert cluster.named("Secret", secret_name) is None


def test_principal_without_token_gets_no_secret(cluster):
    request = start_request()
    request["principal"] = json.dumps({"username": "jdoe", "access_token": None, "refresh_token": None})
    system = Tycho().parse(request)
    cluster.guids.append(system.identifier)
    compute().start(system)
    assert sorted(o["kind"] for o in cluster.objects(system.identifier)) == ["Deployment", "Service"]
    (deployment,) = cluster.of_kind(system.identifier, "Deployment")
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        assert not {"ACCESS_TOKEN", "access_token", "refresh_token"} & set(names(container))


@pytest.mark.parametrize("mode", ["literal", "off"])
def test_access_token_env_setting(cluster, monkeypatch, mode):
    config = yaml.safe_load(_native.DEFAULT_CONFIG)
    config["tycho"]["compute"]["system"]["access_token_env"] = mode
    system = Tycho().parse(start_request())
    cluster.guids.append(system.identifier)
    KubernetesCompute(config).start(system)
    assert sorted(o["kind"] for o in cluster.objects(system.identifier)) == ["Deployment", "Service"]
    (deployment,) = cluster.of_kind(system.identifier, "Deployment")
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        env = {e["name"]: e for e in container["env"]}
        assert all("valueFrom" not in e for e in env.values())
        if mode == "literal":
            # appstore's vendored copy: the value in the pod spec.
            assert env["ACCESS_TOKEN"] == {"name": "ACCESS_TOKEN", "value": "secret-token-A"}
            assert env["access_token"]["value"] == "secret-token-A"
        else:
            assert "ACCESS_TOKEN" not in env and "access_token" not in env
            assert "secret-token-A" not in json.dumps(deployment)


def test_environment_variable_overrides_the_setting_and_bad_values_are_named(cluster, monkeypatch):
    monkeypatch.setenv("TYCHO_ACCESS_TOKEN_ENV", "off")
    system = Tycho().parse(start_request())
    cluster.guids.append(system.identifier)
    compute().start(system)
    assert "Secret" not in [o["kind"] for o in cluster.objects(system.identifier)]
    monkeypatch.setenv("TYCHO_ACCESS_TOKEN_ENV", "plaintext")
    system = Tycho().parse(start_request())
    with pytest.raises(StartException) as info:
        compute().start(system)
    assert "TYCHO_ACCESS_TOKEN_ENV must be one of secret, literal, off" in str(info.value)
    assert "plaintext" in str(info.value)
    assert cluster.objects(system.identifier) == []


def test_forbidden_secret_create_names_the_rule_and_leaves_nothing(cluster, caplog):
    caplog.set_level(logging.DEBUG)
    emu = cluster.control
    emu.faults(method="POST", path_regex=r"/secrets$", every=True, status=403, reason="Forbidden",
               message='secrets is forbidden: User "system:serviceaccount:default:tycho-api" cannot create '
                       'resource "secrets" in API group "" in the namespace "default"')
    system = Tycho().parse(start_request(clients=["10.0.0.0/8"]))
    cluster.guids.append(system.identifier)
    with pytest.raises(StartException) as info:
        compute().start(system)
    message = str(info.value)
    assert f'Secret "jupyter-ds-{system.identifier}-tokens"' in message and "HTTP 403" in message
    assert "`create secrets` in namespace default" in message
    assert "tycho.compute.system.access_token_env" in message
    assert "everything created for it was removed" in message
    emu.clear_faults()
    assert cluster.objects(system.identifier) == []


def test_an_api_server_echoing_the_token_is_redacted(cluster, caplog):
    caplog.set_level(logging.DEBUG)
    emu = cluster.control
    echoed = f'Secret "x" is invalid: data[access_token]: "{"secret-token-A"}" ({b64("secret-token-A")})'
    emu.faults(method="POST", path_regex=r"/secrets$", every=True, status=422, reason="Invalid", message=echoed)
    system = Tycho().parse(start_request())
    cluster.guids.append(system.identifier)
    with pytest.raises(StartException) as info:
        compute().start(system)
    message = str(info.value)
    assert "HTTP 422" in message and "<redacted>" in message
    assert_token_absent(message, "secret-token-A")
    records = "\n".join(r.getMessage() for r in caplog.records)
    assert "<redacted>" in records
    assert_token_absent(records, "secret-token-A")
    emu.clear_faults()
    assert cluster.objects(system.identifier) == []


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "tycho", *args], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **(env or {})))


def test_render_redacts_the_secret_unless_asked(tmp_path):
    compose = tmp_path / "app" / "docker-compose.yaml"
    compose.parent.mkdir()
    compose.write_text(SPEC.replace("{{ hub }}", "docker.io").replace("jupyter-ds", "app"))
    env = {"TYCHO_ACCESS_TOKEN": SESSION_ID}
    shown = run_cli("render", "-f", str(compose), "-o", "json", env=env)
    assert shown.returncode == 0, shown.stderr
    items = json.loads(shown.stdout)["items"]
    assert [o["kind"] for o in items] == ["Deployment", "Service", "Secret"]
    assert items[2]["stringData"] == {"access_token": "<redacted>"} and "data" not in items[2]
    assert_token_absent(shown.stdout + shown.stderr)
    env_entry = next(e for e in items[0]["spec"]["template"]["spec"]["containers"][0]["env"]
                     if e["name"] == "ACCESS_TOKEN")
    assert env_entry["valueFrom"]["secretKeyRef"]["name"] == items[2]["metadata"]["name"]

    revealed = run_cli("render", "-f", str(compose), "-o", "json", "--show-secrets", env=env)
    assert revealed.returncode == 0, revealed.stderr
    secret = json.loads(revealed.stdout)["items"][2]
    assert secret["data"] == {"access_token": b64(SESSION_ID)}
    assert SESSION_ID not in revealed.stdout  # base64 only

    import kubernetes_validate

    for item in items + [secret]:
        kubernetes_validate.validate(item, "1.30.0", strict=True)


def test_hand_built_system_gets_the_same_env_as_a_parsed_one(cluster):
    """tycho.model.System built in Python goes through the same Rust rule (src/compile/token_secret.rs)
    as a parsed one: same Secret, same env order."""
    from tycho.config import Config
    from tycho.model import System

    principal = {"username": "jdoe", "access_token": SESSION_ID, "refresh_token": None, "host": HOST,
                 "extra_container_env": {"GRADER_API_URL": GRADER}}
    guid = "0123456789abcdef0123456789abcde1"
    cluster.guids.append(guid)
    built = System(Config(), "web", dict(principal), "default", "", {"enabled": False, "target": None},
                   [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}],
                   guid, False, services={"web": {"port": 80}})
    compute().start(built)
    parsed = Tycho().parse({"name": "web", "principal": json.dumps(principal), "serviceaccount": "default",
                            "env": None, "services": {"web": {"port": 80}},
                            "system": {"services": {"web": {"image": "nginx:1.27", "ports": ["80"]}}}})
    cluster.guids.append(parsed.identifier)
    compute().start(parsed)
    envs = []
    for g in (guid, parsed.identifier):
        (deployment,) = cluster.of_kind(g, "Deployment")
        (secret,) = cluster.of_kind(g, "Secret")
        assert secret["data"] == {"access_token": b64(SESSION_ID)}
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = json.loads(json.dumps(container["env"]).replace(g, "<GUID>"))
        # from GUID on; HOST moves with the settings env (1.17.3's rule), which only the
        # parsed system has
        env = [e for e in env[names({"env": env}).index("GUID"):] if e["name"] != "HOST"]
        envs.append(env)
    assert envs[0] == envs[1]
    assert names({"env": envs[0]}) == ["GUID", "USER_NAME", "USER", "ACCESS_TOKEN", "GRADER_API_URL",
                                       "NB_PREFIX", "FB_BASEURL", "username", "access_token", "host"]
