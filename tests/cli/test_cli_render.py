"""`tycho render` through the installed console script, as a user runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.parent for p in (ROOT / "examples").glob("*/docker-compose.yaml"))


def tycho(*args, cwd=None):
    exe = shutil.which("tycho") or str(Path(sys.executable).parent / "tycho")
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_examples_exist():
    names = {p.name for p in EXAMPLES}
    assert {"jupyter-ds", "rstudio-server", "nginx", "webtop-gpu", "dashboard"} <= names


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
@pytest.mark.parametrize("ambassador", [False, True])
def test_render_examples(example, ambassador):
    args = ["render", "-f", str(example / "docker-compose.yaml"), "-o", "json"] + (["--ambassador"] if ambassador else [])
    proc = tycho(*args)
    assert proc.returncode == 0, proc.stderr
    items = json.loads(proc.stdout)["items"]
    assert items[0]["kind"] == "Deployment"
    assert items[0]["metadata"]["name"].startswith(example.name + "-")
    services = [o for o in items if o["kind"] == "Service"]
    assert services and all(s["spec"]["type"] == ("ClusterIP" if ambassador else "LoadBalancer") for s in services)
    for obj in items:
        kubernetes_validate.validate(obj, "1.30.0", strict=True)


def test_render_yaml_reads_dot_env_beside_compose(tmp_path):
    (tmp_path / "app").mkdir()
    compose = tmp_path / "app" / "docker-compose.yaml"
    compose.write_text("services:\n  app:\n    image: busybox\n    entrypoint: sleep {{ NAP }}\n    ports: ['8080']\n")
    (tmp_path / "app" / ".env").write_text("NAP=3600\n")
    proc = tycho("render", "-f", str(compose), "--guid", "ab" * 16, "--username", "alice")
    assert proc.returncode == 0, proc.stderr
    docs = list(yaml.safe_load_all(proc.stdout))
    dep = docs[0]
    assert dep["metadata"]["name"] == "app-" + "ab" * 16
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sleep", "3600"]
    assert dep["metadata"]["labels"]["username"] == "alice"


def test_render_env_file_and_name(tmp_path):
    compose = tmp_path / "c.yaml"
    compose.write_text("services:\n  web:\n    image: nginx\n    environment: ['GREETING={{ HELLO }}']\n    ports: ['80']\n")
    env = tmp_path / "settings.env"
    env.write_text("HELLO=hi there\n")
    proc = tycho("render", "-f", str(compose), "--env-file", str(env), "-n", "site", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    dep = json.loads(proc.stdout)["items"][0]
    assert dep["metadata"]["name"].startswith("site-")
    env_vars = {e["name"]: e["value"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env_vars["GREETING"] == "hi there"


@pytest.mark.parametrize(
    "content, words",
    [
        ("services:\n  web:\n    ports: ['80']\n", ["web", "image"]),
        ("services:\n  web:\n    image: nginx\n    ports: ['eighty']\n", ["web", "ports", "eighty"]),
        ("services: [\n", ["YAML"]),
    ],
)
def test_render_bad_input_is_one_line_exit_1(tmp_path, content, words):
    compose = tmp_path / "docker-compose.yaml"
    compose.write_text(content)
    proc = tycho("render", "-f", str(compose))
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tycho: error:"), proc.stderr
    for w in words:
        assert w in lines[0]


def test_usage_errors_exit_2():
    assert tycho("render").returncode == 2
    assert tycho("frobnicate").returncode == 2
    assert tycho("--help").returncode == 0
