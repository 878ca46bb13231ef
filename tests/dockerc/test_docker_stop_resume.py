"""Stop and resume (issue 22, part 1) on the Docker backplane, against the real Docker
Engine: ``DockerComposeCompute.stop/resume`` and ``tycho stop|resume -b docker``. The
containers are stopped and started again; the network and the containers are kept; both
are idempotent; with reasons, a stopped system's reason says so. The Kubernetes faces:
tests/kube/test_stop_resume.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_docker import (  # noqa: F401 - pytest fixtures
    ROW_KEYS,
    docker_env,
    engine,
    image,
    parse,
    ready_row,
    retry_get,
    systems,
    two_services,
    wait_for,
)
from test_docker import compute as docker_compute
from test_docker import start_request as docker_start_request
from tycho.exceptions import TychoException

EXE = shutil.which("tycho") or str(Path(sys.executable).parent / "tycho")


def test_docker_stop_and_resume(engine, image, docker_env, systems):  # noqa: F811
    compose = two_services(image)
    del compose["services"]["client"]
    system = parse(docker_start_request(compose))
    guid = system.identifier
    systems.append(guid)
    c = docker_compute()
    result = c.start(system)
    port = result["containers"]["web"]["port-1"]
    ready_row(guid)
    assert retry_get(port)[0] == 200
    networks = engine.leftovers(guid)["networks"]

    assert c.stop(guid) == {"name": guid, "containers": 1}
    assert c.stop(guid) == {"name": guid, "containers": 1}  # idempotent
    (row,) = c.status(name=guid, reasons=True)
    assert row["is_ready"] is False and row["reason"].startswith("Stopped"), row
    (plain,) = c.status(name=guid)
    assert set(plain) == ROW_KEYS
    left = engine.leftovers(guid)
    assert len(left["containers"]) == 1 and left["networks"] == networks  # kept

    assert c.resume(guid) == {"name": guid, "containers": 1}
    assert c.resume(guid) == {"name": guid, "containers": 1}  # idempotent
    ready_row(guid)
    (row,) = c.status(name=guid)
    port = wait_for(lambda: c.status(name=guid)[0]["port"], what="a published port")
    assert retry_get(port)[0] == 200
    # The command line's -b docker.
    env = {k: v for k, v in os.environ.items() if k != "REST_API"}
    for verb in ("stop", "resume"):
        proc = subprocess.run([EXE, verb, "-b", "docker", guid], capture_output=True, text=True, timeout=120,
                              env=env)
        assert proc.returncode == 0 and proc.stdout == f"{guid}\n", proc.stderr
    ready_row(guid)
    with pytest.raises(TychoException, match="runs on the kubernetes backplane only"):
        c.touch(guid)
    with pytest.raises(TychoException, match="no system"):
        c.stop("0123456789abcdef0123456789abcdef")

