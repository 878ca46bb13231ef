"""The Docker backplane (src/exec/docker) against the real Docker Engine of this machine.

Images are built here (tests/docker-image/httpd.rs, static, imported into an empty
image once per session); no registry is needed. What is asserted is read back from the
Engine directly (tests/support/docker_engine.py), not through the backplane.

The Engine may hold objects of earlier runs and of other tools (CI runs on the
developer's machine): usernames, claims and foreign objects are unique to the run
(``RUN``), and tests assert only on what they created. Every test removes whatever
carries its GUID; the run's volumes go at the end of the session (``stdnfs_shared``,
shared by every system, only when this run created it and nothing mounts it).

Skipped with a reason only when no Engine answers and CI is unset; under CI a missing
Engine fails the tests.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from docker_engine import Engine, FaultProxy, build_httpd_image, wait_for
from tycho import _native
from tycho.client import TychoService
from tycho.config import Config
from tycho.context import Principal, TychoContext
from tycho.core import Tycho
from tycho.dockerc import DockerComposeCompute
from tycho.exceptions import ModifyException, StartException
from tycho.factory import supported_backplanes

ENGINE = Engine()
# Names unique to this run: the Engine may hold another run's (or tool's) objects.
RUN = uuid.uuid4().hex[:8]
USER = f"jdoe-{RUN}"
APP = f"tdocker-{RUN}"
ROW_KEYS = {"name", "app_id", "sid", "ip_address", "port", "creation_time", "username", "utilization",
            "workspace_name", "is_ready"}


@pytest.fixture(scope="session")
def engine():
    if not ENGINE.reachable():
        reason = f"no Docker Engine answers at {ENGINE.path}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and CI is set: the Docker backplane tests must run in CI")
        pytest.skip(reason)
    return ENGINE


@pytest.fixture(scope="session")
def image(engine, tmp_path_factory):
    return build_httpd_image(engine, tmp_path_factory.mktemp("httpd"))


@pytest.fixture(scope="session", autouse=True)
def run_volumes():
    """Removes this run's volumes at the end: the users' ``stdnfs_<user>`` (and the
    claims tests name with RUN), and ``stdnfs_shared`` if this run created it."""
    if not ENGINE.reachable():
        yield
        return
    shared_before = ENGINE.volume("stdnfs_shared") is not None
    yield
    for v in ENGINE.volumes("executor=tycho"):
        name = v["Name"]
        if RUN in name or (name == "stdnfs_shared" and not shared_before):
            ENGINE.request("DELETE", f"/volumes/{name}")  # 409 when in use: then it stays


@pytest.fixture
def docker_env(monkeypatch, tmp_path):
    """A clean backplane environment: no settings leak in from the caller's."""
    for name in ("TYCHO_DOCKER_BIND_ADDRESS", "TYCHO_DOCKER_HOST_PORTS", "TYCHO_DOCKER_PULL",
                 "TYCHO_DOCKER_TIMEOUT", "TYCHO_DOCKER_VOLUME_ALLOW", "TYCHO_APP_DEFAULT_CPUS",
                 "TYCHO_APP_DEFAULT_MEMORY", "TYCHO_APP_DEFAULT_PIDS", "TYCHO_APP_RUN_AS_USER",
                 "TYCHO_APP_RUN_AS_GROUP", "STDNFS_PVC", "SHARED_DIR", "SUBPATH_DIR", "PARENT_DIR",
                 "CREATE_HOME_DIRS", "DEV_PHASE", "REST_API"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TYCHO_DOCKER_ENV_DIR", str(tmp_path / "env"))
    (tmp_path / "env").mkdir()
    return tmp_path / "env"


@pytest.fixture
def systems(engine):
    """GUIDs started by a test; everything labelled with them is removed afterwards."""
    guids = []
    yield guids
    for guid in guids:
        engine.purge(guid)


def http_get(port, path="/", host="127.0.0.1", timeout=10):
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=timeout) as response:
        return response.status, response.read().decode()


def retry_get(port, path="/", timeout=60.0):
    """GET until the server in the container answers (it may still be starting)."""
    def attempt():
        try:
            return http_get(port, path)
        except OSError:
            return None
    return wait_for(attempt, timeout=timeout, what=f"an answer on port {port}")


def probe(port):
    return {"cmd": ["/httpd", "get", f"http://127.0.0.1:{port}/"], "period": 1, "threshold": 30}


def two_services(img, **extra_web):
    web = {
        "image": img,
        "entrypoint": ["/httpd"],
        "command": ["serve", "8080"],
        "ports": ["8080"],
        "working_dir": "/work",
        "env": ["GREETING=hello web"],
        "ext": {"kube": {"readinessProbe": probe(8080)}},
        "deploy": {"resources": {"limits": {"cpus": "0.5", "memory": "64M"}}},
    }
    web.update(extra_web)
    client = {
        "image": img,
        "command": ["serve", "9090"],
        "ports": ["9090"],
        "user": "4321:4321",
        "ext": {"kube": {"readinessProbe": probe(9090)}},
    }
    return {"version": "3", "services": {"web": web, "client": client}}


def start_request(system, name=APP, username=USER, services=None, env=None):
    return {
        "name": name,
        "principal": json.dumps({"username": username}),
        "serviceaccount": "default",
        "env": env or {"SETTING_ONE": "from settings"},
        "system": system,
        "services": services if services is not None else {"web": {"port": "8080", "clients": []}},
    }


def parse(request):
    return Tycho(backplane="docker-compose").parse(request)


def compute():
    return DockerComposeCompute(config=Config())


def ready_row(guid, timeout=90.0):
    def check():
        rows = compute().status(name=guid)
        return rows[0] if rows and rows[0]["is_ready"] else None
    return wait_for(check, timeout=timeout, what=f"system {guid} ready")


def assert_nothing_left(guid, user=None):
    """Nothing labelled with ``guid``; with ``user`` (a username new to the Engine), no
    ``stdnfs_<user>`` volume either: volumes carry no GUID, a failed start removes those it
    created."""
    assert ENGINE.leftovers(guid) == {"containers": [], "networks": [], "volumes": []}
    if user is not None:
        assert ENGINE.volume(f"stdnfs_{user}") is None


def new_user():
    return f"tnew-{uuid.uuid4().hex[:12]}"


# ------------------------------------------------------------------ selection


def test_backplane_names_of_the_original():
    assert list(supported_backplanes) == ["kubernetes", "docker-compose"]  # the original's names
    assert Tycho.is_valid_backplane("docker-compose") and Tycho.is_valid_backplane("docker")
    assert isinstance(Tycho(backplane="docker-compose").compute, DockerComposeCompute)
    assert isinstance(Tycho(backplane="docker").compute, DockerComposeCompute)
    config = Config()
    config.conf = json.loads(json.dumps(config.conf))
    config.conf["tycho"]["backplane"] = "docker-compose"
    assert isinstance(Tycho(config=config).compute, DockerComposeCompute)
    from tycho.kube import KubernetesCompute
    assert isinstance(Tycho().compute, KubernetesCompute)


# ------------------------------------------------------------------ lifecycle


def test_two_service_system_runs_answers_and_is_removed(engine, image, docker_env, systems):
    shared_before = engine.volume("stdnfs_shared")
    (docker_env / f"{APP}-env").write_text("# the <app>-env values\nSECRET_TOKEN=s3cret\n")
    system = parse(start_request(two_services(image)))
    systems.append(system.identifier)
    result = compute().start(system)

    assert set(result) == {"name", "sid", "containers", "conn_string"}
    assert result["sid"] == system.identifier and result["name"] == system.name
    assert set(result["containers"]) == {"web", "client"}
    web = result["containers"]["web"]
    assert web["ip_address"] == "127.0.0.1" and isinstance(web["port-1"], int)
    client = result["containers"]["client"]

    # The published port answers, from this machine.
    assert retry_get(web["port-1"]) == (200, "tycho-httpd web")
    # The second container reaches the first by its service name on the system's network.
    assert retry_get(client["port-1"], "/fetch/web/8080/") == (200, "tycho-httpd web")
    # Env: compose env, settings, the <app>-env file, the pod template's variables.
    assert http_get(web["port-1"], "/env/GREETING")[1] == "hello web"
    assert http_get(web["port-1"], "/env/SETTING_ONE")[1] == "from settings"
    assert http_get(web["port-1"], "/env/SECRET_TOKEN")[1] == "s3cret"
    assert http_get(web["port-1"], "/env/GUID")[1] == system.identifier
    assert http_get(web["port-1"], "/env/USER_NAME")[1] == USER
    # entrypoint + command, working_dir, user (compose user wins over the security context).
    assert http_get(web["port-1"], "/args")[1] == "/httpd serve 8080"
    assert http_get(web["port-1"], "/cwd")[1] == "/work"
    assert http_get(client["port-1"], "/whoami")[1] == "4321 4321"
    # the security context (TYCHO_APP_RUN_AS_USER/GROUP, default "0" as on Kubernetes)
    assert http_get(web["port-1"], "/whoami")[1] == "0 0"

    # Labels on every container and network; limits mapped.
    guid = system.identifier
    wanted = {"executor": "tycho", "tycho-guid": guid, "username": USER, "app-name": APP}
    containers = engine.containers(f"tycho-guid={guid}")
    assert len(containers) == 2
    networks = engine.networks(f"tycho-guid={guid}")
    assert [n["Name"] for n in networks] == [system.name]
    for labels in [c["Labels"] for c in containers] + [n["Labels"] for n in networks]:
        assert labels.items() >= wanted.items(), labels
    inspected = engine.inspect(f"{system.name}-web")
    # pvc:// mounts (tycho's default stdnfs ones) are named volumes: the shared directory
    # and the user's. They outlive the system and other systems mount them, so they carry
    # no system's labels. stdnfs_shared may come from an earlier run, labelled as then.
    mounted = {m["Name"]: m for m in inspected["Mounts"] if m["Type"] == "volume"}
    assert set(mounted) == {"stdnfs_shared", f"stdnfs_{USER}"}
    assert all(m["RW"] for m in mounted.values())
    shared_labels = {"executor": "tycho", "tycho-shared": "true", "tycho-claim": "stdnfs"}
    assert engine.volume(f"stdnfs_{USER}")["Labels"] == shared_labels
    if shared_before is None:
        assert engine.volume("stdnfs_shared")["Labels"] == shared_labels
    else:
        assert engine.volume("stdnfs_shared")["Labels"] == shared_before["Labels"]
    assert engine.volumes(f"tycho-guid={guid}") == []
    assert inspected["HostConfig"]["NanoCpus"] == 500_000_000
    assert inspected["HostConfig"]["Memory"] == 64_000_000
    # The service without deploy.resources: the default limits (2 CPUs, or the Engine's
    # CPUs when it has fewer), 4Gi, no swap; every container: 4096 processes.
    assert inspected["HostConfig"]["PidsLimit"] == 4096
    bare = engine.inspect(f"{system.name}-client")["HostConfig"]
    cpus = min(2, engine.request("GET", "/info")[1]["NCPU"])
    assert (bare["NanoCpus"], bare["Memory"], bare["MemorySwap"], bare["PidsLimit"]) == (
        cpus * 1_000_000_000, 4 << 30, 4 << 30, 4096)
    assert inspected["Config"]["Healthcheck"]["Test"] == ["CMD", "/httpd", "get", "http://127.0.0.1:8080/"]
    assert inspected["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostIp"] == "127.0.0.1"

    # Status: ready when running and healthy; the Kubernetes row shape.
    row = ready_row(guid)
    assert set(row) == ROW_KEYS
    TychoService(**row)  # the original client's row class accepts it
    assert row["sid"] == guid and row["name"] == system.name and row["username"] == USER
    assert row["ip_address"] == "127.0.0.1" and row["port"] == str(web["port-1"])
    assert row["utilization"]["web"] == {"cpu": "0.5", "memory": "64000000"}
    assert [r["sid"] for r in compute().status(username=USER)] == [guid]
    assert any(r["sid"] == guid for r in compute().status())
    assert compute().status(username="nobody-has-this-name") == []

    # Modify: cpu/memory with container update; labels are refused.
    modify = Tycho().parse_modify({"tycho-guid": guid, "cpu": "0.25", "memory": "96Mi"})
    patched = compute().modify(modify)
    assert len(patched["patches"]) == 2
    after = engine.inspect(f"{system.name}-web")["HostConfig"]
    assert after["NanoCpus"] == 250_000_000 and after["Memory"] == 96 * 1024 * 1024
    with pytest.raises(ModifyException, match="cannot change labels"):
        compute().modify(Tycho().parse_modify({"tycho-guid": guid, "labels": {"team": "x"}}))

    # Delete: containers and network gone, named volumes kept; idempotent.
    assert compute().delete(guid) == {}
    assert_nothing_left(guid)
    assert all(engine.volume(name) is not None for name in mounted)
    assert compute().delete(guid) == {}
    assert compute().status(name=guid) == []


def test_status_reason_is_opt_in(engine, image, docker_env, systems):
    compose = two_services(image)
    del compose["services"]["client"]
    # A probe that can never pass: the system runs but is not ready.
    compose["services"]["web"]["ext"] = {"kube": {"readinessProbe": {
        "cmd": ["/httpd", "get", "http://127.0.0.1:9/"], "period": 1, "threshold": 1}}}
    system = parse(start_request(compose))
    systems.append(system.identifier)
    compute().start(system)

    def unhealthy():
        rows = compute().status(name=system.identifier, reasons=True)
        return rows[0] if rows and "unhealthy" in (rows[0]["reason"] or "") else None

    row = wait_for(unhealthy, what="an unhealthy container")
    assert row["is_ready"] is False
    assert row["reason"].startswith("container web: unhealthy: last check exit code 1")
    plain = compute().status(name=system.identifier)[0]
    assert set(plain) == ROW_KEYS and plain["is_ready"] is False


# ------------------------------------------------------------------ faults


def test_missing_image_leaves_nothing(engine, image, docker_env, systems, monkeypatch):
    monkeypatch.setenv("TYCHO_DOCKER_PULL", "never")
    system = parse(start_request(two_services(image, image="tycho-test-missing:none")))
    systems.append(system.identifier)
    with pytest.raises(StartException, match='image "tycho-test-missing:none" is not present'):
        compute().start(system)
    assert_nothing_left(system.identifier)


def test_hostile_image_reference_is_refused_before_any_call(engine, image, docker_env, systems, monkeypatch,
                                                           tmp_path):
    # An image reference cannot reach another Engine endpoint through the URL path.
    proxy = FaultProxy(tmp_path, engine.path, "NONE", "/")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{proxy.path}")
    try:
        system = parse(start_request(two_services(image, image="x/../../containers/create?name=evil")))
        systems.append(system.identifier)
        with pytest.raises(StartException) as caught:
            compute().start(system)
        assert caught.value.args[0].endswith(
            "service 'web': image \"x/../../containers/create?name=evil\" is not a valid image reference")
        assert proxy.log == []
    finally:
        proxy.close()
    assert_nothing_left(system.identifier)


def test_failed_pull_names_the_image(engine, image, docker_env, systems):
    missing = "127.0.0.1:1/tycho-test-missing:1"  # a registry that refuses at once
    system = parse(start_request(two_services(image, image=missing)))
    systems.append(system.identifier)
    with pytest.raises(StartException, match=f'image "{missing}" is not present and pulling it failed'):
        compute().start(system)
    assert_nothing_left(system.identifier)


def test_taken_port_leaves_nothing(engine, image, docker_env, systems, monkeypatch):
    monkeypatch.setenv("TYCHO_DOCKER_HOST_PORTS", "compose")
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    user = new_user()
    try:
        system = parse(start_request(two_services(image, ports=[f"{port}:8080"]), username=user))
        systems.append(system.identifier)
        with pytest.raises(StartException) as caught:
            compute().start(system)
        message = caught.value.args[0]
        assert f"127.0.0.1:{port}->8080/tcp" in message and "service 'web'" in message, message
        assert "everything created for it was removed" in message
        assert_nothing_left(system.identifier, user)
    finally:
        holder.close()


@pytest.mark.parametrize(
    "method, prefix, suffix, nth",
    [
        ("POST", "/networks/create", "", 1),
        ("POST", "/containers/create", "", 2),
        ("POST", "/containers/", "/start", 2),
    ],
    ids=["network-create", "second-container-create", "second-container-start"],
)
def test_engine_error_mid_start_leaves_nothing(engine, image, docker_env, systems, monkeypatch, tmp_path,
                                               method, prefix, suffix, nth):
    proxy = FaultProxy(tmp_path, engine.path, method, prefix, nth=nth, suffix=suffix)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{proxy.path}")
    user = new_user()
    try:
        system = parse(start_request(two_services(image), username=user))
        systems.append(system.identifier)
        with pytest.raises(StartException, match="HTTP 500: injected fault") as caught:
            compute().start(system)
        assert proxy.injected == 1, proxy.log
        if nth > 1:
            assert "everything created for it was removed" in str(caught.value)
            # stdnfs_<user> was created by this start (and is gone again, below).
            assert ("POST", "/volumes/create") in proxy.log
    finally:
        proxy.close()
    assert_nothing_left(system.identifier, user)


# ------------------------------------------------------------------ the backplane in its lane


def one_service(img, **extra_web):
    compose = two_services(img, **extra_web)
    del compose["services"]["client"]
    return compose


def test_foreign_volume_is_refused_and_nothing_is_created(engine, image, docker_env, systems, monkeypatch,
                                                         tmp_path):
    # A Compose project's volume (`docker compose -p tfor-<run>` with a volume `secret`).
    foreign = f"tfor-{RUN}_secret"
    labels = {"com.docker.compose.project": f"tfor-{RUN}", "com.docker.compose.volume": "secret",
              "com.docker.compose.version": "2.29.0"}
    engine.create_volume(foreign, labels)
    proxy = FaultProxy(tmp_path, engine.path, "NONE", "/")  # passes everything, logs it
    monkeypatch.setenv("DOCKER_HOST", f"unix://{proxy.path}")
    user = f"tfor-{RUN}"  # its stdnfs_<user> volume would be new
    try:
        system = parse(start_request(one_service(image, volumes=[f"pvc://tfor-{RUN}/secret:/steal"]),
                                     username=user))
        systems.append(system.identifier)
        with pytest.raises(StartException) as caught:
            compute().start(system)
        message = caught.value.args[0]
        assert (f'volume "{foreign}" (service \'web\', claim "tfor-{RUN}") exists but tycho did not create it'
                in message), message
        assert "TYCHO_DOCKER_VOLUME_ALLOW" in message
        # Only reads reached the Engine: no network, volume or container was created.
        assert [(m, p) for m, p in proxy.log if m != "GET"] == []
    finally:
        proxy.close()
    try:
        assert_nothing_left(system.identifier, user)
        assert engine.volume(foreign)["Labels"] == labels
    finally:
        engine.remove_volume(foreign)


def test_allow_list_admits_a_named_foreign_volume(engine, image, docker_env, systems, monkeypatch):
    foreign = f"tallow-{RUN}_data"
    labels = {"com.docker.compose.project": f"tallow-{RUN}", "com.docker.compose.volume": "data"}
    engine.create_volume(foreign, labels)
    try:
        monkeypatch.setenv("TYCHO_DOCKER_VOLUME_ALLOW", f"not-this-one, {foreign}")
        system = parse(start_request(one_service(image, volumes=[f"pvc://tallow-{RUN}/data:/data"])))
        systems.append(system.identifier)
        compute().start(system)
        mounts = {m["Name"]: m for m in engine.inspect(f"{system.name}-web")["Mounts"] if m["Type"] == "volume"}
        assert mounts[foreign]["Destination"] == "/data" and mounts[foreign]["RW"] is True
        assert compute().delete(system.identifier) == {}
        assert_nothing_left(system.identifier)
        # Mounted as it is: not relabelled, and kept after the delete.
        assert engine.volume(foreign)["Labels"] == labels
    finally:
        engine.purge(system.identifier)
        engine.remove_volume(foreign)


def test_foreign_container_and_network_with_the_guid_survive_modify_and_delete(engine, image, docker_env,
                                                                                systems):
    system = parse(start_request(one_service(image)))
    guid = system.identifier
    systems.append(guid)
    compute().start(system)
    # Someone else's container and network, labelled with the GUID (not executor=tycho).
    foreign = engine.create_container(f"tforeign-{RUN}-{guid[:8]}", image,
                                      {"tycho-guid": guid, "tycho-service": "web"}, nano_cpus=1_000_000_000)
    network = engine.create_network(f"tforeign-{RUN}-{guid[:8]}", {"tycho-guid": guid})
    try:
        assert [r["sid"] for r in compute().status(name=guid)] == [guid]
        patched = compute().modify(Tycho().parse_modify({"tycho-guid": guid, "cpu": "0.25"}))
        assert patched["patches"] == [{"container": "web", "resources": {"cpu": "0.25"}}]
        assert engine.inspect(f"{system.name}-web")["HostConfig"]["NanoCpus"] == 250_000_000
        assert engine.container(foreign)["HostConfig"]["NanoCpus"] == 1_000_000_000

        assert compute().delete(guid) == {}
        assert engine.containers(["executor=tycho", f"tycho-guid={guid}"]) == []
        assert engine.networks(["executor=tycho", f"tycho-guid={guid}"]) == []
        assert engine.container(foreign)["State"]["Running"] is True
        assert engine.network(network) is not None

        # With only the foreign container left, the GUID has no system to modify.
        with pytest.raises(ModifyException, match="no container labelled executor=tycho"):
            compute().modify(Tycho().parse_modify({"tycho-guid": guid, "cpu": "0.5"}))
        assert engine.container(foreign)["HostConfig"]["NanoCpus"] == 1_000_000_000
    finally:
        engine.remove_container(foreign)
        engine.remove_network(network)


def test_failed_start_leaves_a_foreign_container_of_the_same_name(engine, image, docker_env, systems):
    system = parse(start_request(one_service(image)))
    guid = system.identifier
    systems.append(guid)
    # The container name the start will use, taken by someone else (labelled with the GUID).
    foreign = engine.create_container(f"{system.name}-web", image, {"tycho-guid": guid})
    try:
        with pytest.raises(StartException) as caught:
            compute().start(system)
        message = caught.value.args[0]
        assert f'cannot create container "{system.name}-web"' in message and "HTTP 409" in message, message
        assert "everything created for it was removed" in message
        assert engine.containers(["executor=tycho", f"tycho-guid={guid}"]) == []
        assert engine.networks(f"tycho-guid={guid}") == []
        assert engine.container(foreign)["State"]["Running"] is True
    finally:
        engine.remove_container(foreign)


def test_shared_volume_of_an_earlier_system_is_mounted_as_it_is(engine, image, docker_env, systems, monkeypatch):
    # The machine's history: the shared directory's volume made by an earlier tycho for
    # another system, labelled with that system's GUID (what the CI run met).
    claim = f"tearly-{RUN}"
    monkeypatch.setenv("STDNFS_PVC", claim)
    earlier = {"executor": "tycho", "tycho-guid": uuid.uuid4().hex, "username": "someone-else",
               "app-name": "old"}
    engine.create_volume(f"{claim}_shared", earlier)
    system = parse(start_request(one_service(image)))
    systems.append(system.identifier)
    compute().start(system)
    mounts = {m["Name"] for m in engine.inspect(f"{system.name}-web")["Mounts"] if m["Type"] == "volume"}
    assert mounts == {f"{claim}_shared", f"{claim}_{USER}"}
    assert engine.volume(f"{claim}_shared")["Labels"] == earlier
    assert engine.volume(f"{claim}_{USER}")["Labels"] == {
        "executor": "tycho", "tycho-shared": "true", "tycho-claim": claim}
    assert [r["sid"] for r in compute().status(name=system.identifier)] == [system.identifier]
    assert compute().delete(system.identifier) == {}
    assert_nothing_left(system.identifier)
    assert engine.volume(f"{claim}_shared") is not None and engine.volume(f"{claim}_{USER}") is not None


def test_default_limits_are_configurable(engine, image, docker_env, systems, monkeypatch):
    monkeypatch.setenv("TYCHO_APP_DEFAULT_MEMORY", "256Mi")
    monkeypatch.setenv("TYCHO_APP_DEFAULT_CPUS", "none")
    monkeypatch.setenv("TYCHO_APP_DEFAULT_PIDS", "100")
    compose = one_service(image)
    del compose["services"]["web"]["deploy"]
    system = parse(start_request(compose))
    systems.append(system.identifier)
    compute().start(system)
    host = engine.inspect(f"{system.name}-web")["HostConfig"]
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (256 << 20, 0, 100)

    monkeypatch.setenv("TYCHO_APP_DEFAULT_PIDS", "lots")
    again = parse(start_request(compose))
    systems.append(again.identifier)
    with pytest.raises(StartException, match='TYCHO_APP_DEFAULT_PIDS: "lots" is not a process count'):
        compute().start(again)
    assert_nothing_left(again.identifier)


# ------------------------------------------------------------------ the spec's privileges and filesystems


def caps(values):
    """Capability names without the ``CAP_`` prefix (Engines differ in how they show them)."""
    return [v.upper().removeprefix("CAP_") for v in values or []]


def udp_exchange(port, payload, timeout=60.0):
    """Sends ``payload`` to 127.0.0.1:``port`` over UDP until an answer comes back."""
    def attempt():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1.0)
            s.sendto(payload, ("127.0.0.1", port))
            try:
                return s.recvfrom(1500)[0].decode()
            except OSError:
                return None
    return wait_for(attempt, timeout=timeout, what=f"a UDP answer on port {port}")


def test_the_spec_s_privileges_and_filesystems_reach_the_container(engine, image, docker_env, systems):
    compose = one_service(
        image, command=["serve", "8080", "5353"], ports=["8080", "5353/udp"], user="4321:4321",
        read_only=True, cap_add=["net_bind_service"], cap_drop=["ALL"], tmpfs=["/tmp:size=1m"],
        shm_size="16m")
    system = parse(start_request(compose))
    guid = system.identifier
    systems.append(guid)
    result = compute().start(system)
    web = result["containers"]["web"]

    inspected = engine.inspect(f"{system.name}-web")
    host = inspected["HostConfig"]
    assert caps(host["CapAdd"]) == ["NET_BIND_SERVICE"] and caps(host["CapDrop"]) == ["ALL"]
    assert host["ReadonlyRootfs"] is True and host["Privileged"] is False
    assert host["Tmpfs"] == {"/tmp": f"size={1 << 20}"}
    assert host["ShmSize"] == 16 << 20
    assert inspected["Config"]["User"] == "4321:4321"
    assert "5353/udp" in inspected["Config"]["ExposedPorts"]
    assert host["PortBindings"]["5353/udp"][0]["HostIp"] == "127.0.0.1"

    # A read-only root filesystem, and the server still answers HTTP.
    assert retry_get(web["port-1"]) == (200, "tycho-httpd web")
    assert http_get(web["port-1"], "/whoami")[1] == "4321 4321"
    # Only NET_BIND_SERVICE is left in the bounding set (bit 10); the uid has none in effect.
    assert http_get(web["port-1"], "/caps")[1] == "0000000000000000 0000000000000400"
    # The root filesystem refuses writes (/work is world-writable in the image); the tmpfs takes them.
    with pytest.raises(urllib.error.HTTPError) as refused:
        http_get(web["port-1"], "/write/work/file")
    assert "Read-only file system" in refused.value.read().decode()
    assert http_get(web["port-1"], "/write/tmp/file") == (200, "written")
    tmp = http_get(web["port-1"], "/mount/tmp")[1].split()
    assert tmp[2] == "tmpfs" and "size=1024k" in tmp[3].split(","), tmp
    shm = http_get(web["port-1"], "/mount/dev/shm")[1].split()
    assert shm[2] == "tmpfs" and "size=16384k" in shm[3].split(","), shm
    # The UDP port is published as UDP: a datagram reaches the server and its answer comes back.
    assert isinstance(web["port-2"], int)
    assert udp_exchange(web["port-2"], b"ping") == "udp web ping"

    assert compute().delete(guid) == {}
    assert_nothing_left(guid)


def test_a_gid_alone_runs_with_the_image_s_user(engine, image, docker_env, systems):
    compose = one_service(image, user="4321:4321")
    # The registry sets the ids (compose user gives way): no uid, gid 5.
    compose["security_context"] = {"runAsUser": "", "runAsGroup": 5}
    system = parse(start_request(compose))
    systems.append(system.identifier)
    result = compute().start(system)
    # The test image has no USER: root, with the group.
    assert engine.inspect(f"{system.name}-web")["Config"]["User"] == "0:5"
    assert retry_get(result["containers"]["web"]["port-1"], "/whoami") == (200, "0 5")
    assert compute().delete(system.identifier) == {}
    assert_nothing_left(system.identifier)


def test_what_docker_cannot_map_is_a_warning_or_in_strict_mode_an_error(engine, image, docker_env, systems,
                                                                          caplog, monkeypatch):
    request = start_request(one_service(image), services={"web": {"port": "8080", "clients": ["10.1.0.0/16"]}})
    system = parse(request)
    systems.append(system.identifier)
    with caplog.at_level(logging.WARNING, logger="tycho.docker"):
        compute().start(system)
    warned = [r.getMessage() for r in caplog.records if r.name == "tycho.docker" and r.levelno == logging.WARNING]
    assert (f"system {system.name}: service 'web': 'clients' 10.1.0.0/16 is not enforced on Docker (no "
            "NetworkPolicy): the published ports accept every client that reaches 127.0.0.1") in warned, warned
    assert compute().delete(system.identifier) == {}

    config = Config()
    config.conf = json.loads(json.dumps(config.conf))
    config.conf["tycho"]["compute"]["system"]["strict"] = True
    strict = Tycho(backplane="docker", config=config).parse(request)  # nothing for the model to warn about
    systems.append(strict.identifier)
    with pytest.raises(StartException) as caught:
        DockerComposeCompute(config=config).start(strict)
    assert caught.value.args[0].endswith("'clients' 10.1.0.0/16 is not enforced on Docker (no NetworkPolicy): "
                                         "the published ports accept every client that reaches 127.0.0.1 "
                                         "(strict mode)"), caught.value.args[0]
    assert_nothing_left(strict.identifier)

    # What the pod security level lets through is what runs: SYS_ADMIN at privileged.
    monkeypatch.setenv("TYCHO_POD_SECURITY", "privileged")
    admin = parse(start_request(one_service(image, cap_add=["SYS_ADMIN"])))
    systems.append(admin.identifier)
    compute().start(admin)
    assert caps(engine.inspect(f"{admin.name}-web")["HostConfig"]["CapAdd"]) == ["SYS_ADMIN"]
    assert compute().delete(admin.identifier) == {}
    assert_nothing_left(admin.identifier)


# ------------------------------------------------------------------ the Python API and the CLI


class _Registry:
    def __init__(self, files):
        self.files = files
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                body = outer.files.get(self.path.split("?", 1)[0])
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_context_start_status_delete_on_docker(engine, image, docker_env, systems, monkeypatch):
    import tycho.actions

    registry = _Registry({
        "/registry/app-registry.yaml": (
            "api: Tycho\nversion: 0.1.0\nrepositories:\n  local:\n    url: apps\n"
            "contexts:\n  dockertest:\n    name: Docker test\n    apps:\n      tdocker:\n"
            "        name: Docker test app\n        services:\n          tdocker: 8080\n"
            "        ext:\n          kube:\n            readinessProbe:\n"
            "              cmd: [/httpd, get, 'http://127.0.0.1:8080/']\n              period: 1\n"),
        "/registry/app-defaults.yaml": "{}\n",
        "/registry/apps/tdocker/docker-compose.yaml": (
            f"version: '3'\nservices:\n  tdocker:\n    image: {image}\n    entrypoint: /httpd serve 8080\n"
            "    ports: ['8080']\n"),
        "/registry/apps/tdocker/.env": "greeting=hello from the registry\n",
    })
    monkeypatch.setattr(tycho.actions, "backplane", "docker-compose")
    monkeypatch.setattr(tycho.actions, "_tycho", None)
    try:
        context = TychoContext(product="dockertest", tycho_config_url=registry.base + "registry")
        started = context.start(Principal(USER), "tdocker", {}, "localhost")
        assert started.status == "success", started.message
        systems.append(started.identifier)
        (service,) = started.services
        assert service.name == "tdocker" and service.ip_address == "127.0.0.1"
        assert retry_get(service.port) == (200, "tycho-httpd tdocker")
        # the app's .env settings reach the container's environment
        assert http_get(service.port, "/env/greeting")[1] == "hello from the registry"

        def ready():
            status = context.status({"name": started.identifier})
            return status if status.services and status.services[0].is_ready else None

        status = wait_for(ready, what="the context's system ready")
        assert status.services[0].identifier == started.identifier
        context.delete({"name": started.identifier})
        left = engine.leftovers(started.identifier)
        assert left["containers"] == [] and left["networks"] == []
        assert context.status({"name": started.identifier}).services == []
    finally:
        registry.close()


def _cli(*args, env=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "tycho", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_cli_up_status_modify_down_with_backplane(engine, image, docker_env, systems, tmp_path):
    app = tmp_path / "tcli"
    app.mkdir()
    compose = two_services(image)
    (app / "docker-compose.yaml").write_text(json.dumps(compose))
    env = dict(os.environ)
    up = _cli("up", "-b", "docker-compose", "-f", str(app / "docker-compose.yaml"), "-o", "json", "--wait",
              "--timeout", "120", "--username", USER, env=env)
    assert up.returncode == 0, up.stderr
    result = json.loads(up.stdout)
    guid = result["sid"]
    systems.append(guid)
    assert retry_get(result["containers"]["web"]["port-1"]) == (200, "tycho-httpd web")
    assert "is ready" in up.stderr

    status = _cli("status", "-b", "docker", "--terse", env=env)
    assert status.returncode == 0 and guid in status.stdout.split(), status.stderr
    table = _cli("status", "-b", "docker", guid, env=env)
    assert table.stdout.startswith("SYSTEM") and result["name"][:28] in table.stdout

    changed = _cli("modify", "-b", "docker", json.dumps({"tycho-guid": guid, "cpu": "0.3"}), env=env)
    assert changed.returncode == 0, changed.stderr
    assert engine.inspect(f"{result['name']}-web")["HostConfig"]["NanoCpus"] == 300_000_000
    refused = _cli("modify", "-b", "docker", json.dumps({"tycho-guid": guid, "labels": {"a": "b"}}), env=env)
    assert refused.returncode == 1 and "cannot change labels" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    down = _cli("down", "-b", "docker-compose", guid, env=env)
    assert down.returncode == 0 and down.stdout.strip() == guid, down.stderr
    left = engine.leftovers(guid)
    assert left["containers"] == [] and left["networks"] == []

    bad = _cli("status", "-b", "nomad", env=env)
    assert bad.returncode == 1 and "supported backplanes: kubernetes, docker-compose, docker" in bad.stderr


def test_cli_strict_refuses_what_docker_cannot_map_and_warns_otherwise(engine, image, docker_env, systems,
                                                                        tmp_path):
    app = tmp_path / "tstrict"
    app.mkdir()
    (app / "docker-compose.yaml").write_text(json.dumps(one_service(image)))
    # An fsGroup the Engine cannot give the (default stdnfs) volumes to.
    env = dict(os.environ, TYCHO_APP_FS_GROUP="1000")
    base = ["up", "-b", "docker", "-f", str(app / "docker-compose.yaml"), "-o", "json", "--username", USER]
    guid = uuid.uuid4().hex
    systems.append(guid)
    refused = _cli(*base, "--guid", guid, "--strict", env=env)
    assert refused.returncode == 1, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tycho: error: "), refused.stderr
    assert "service 'web': 'security_context.fsGroup' 1000 is a supplementary group only on Docker" in lines[0]
    assert lines[0].endswith("(strict mode)"), lines[0]
    assert_nothing_left(guid)

    started = _cli(*base, "--guid", guid, env=env)
    assert started.returncode == 0, started.stderr
    assert "WARNING" in started.stderr and "'security_context.fsGroup' 1000" in started.stderr, started.stderr
    assert engine.inspect(f"{json.loads(started.stdout)['name']}-web")["HostConfig"]["GroupAdd"] == ["1000"]
    assert _cli("down", "-b", "docker", guid, env=env).returncode == 0
    assert_nothing_left(guid)


def test_api_server_on_the_docker_backplane(engine, image, docker_env, systems, tmp_path):
    from api_server import Server

    server = Server(tmp_path, tmp_path / "no-kubeconfig", args=["-b", "docker-compose"]).wait_listening()
    try:
        def post(route, body):
            req = urllib.request.Request(f"{server.url}/system/{route}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(req, timeout=120) as response:
                return json.loads(response.read())

        with urllib.request.urlopen(f"{server.url}/readyz", timeout=30) as response:
            assert response.status == 200  # the Engine answers
        started = post("start", start_request(two_services(image)))
        assert started["status"] == "success", started
        guid = started["result"]["sid"]
        systems.append(guid)
        port = started["result"]["containers"]["web"]["port-1"]
        assert retry_get(port) == (200, "tycho-httpd web")
        rows = post("status", {"name": guid})["result"]
        assert [r["sid"] for r in rows] == [guid] and set(rows[0]) == ROW_KEYS
        refused = post("modify", {"tycho-guid": guid, "labels": {"a": "b"}})
        assert refused["status"] == "error" and "cannot change labels" in json.dumps(refused)
        assert post("delete", {"name": guid})["status"] == "success"
        assert engine.leftovers(guid)["containers"] == []
    finally:
        server.stop()


def test_native_functions_are_there():
    for op in ("start", "status", "delete", "modify"):
        assert callable(getattr(_native, f"docker_{op}"))
