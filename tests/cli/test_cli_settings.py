"""Settings substitution of `tycho render` and `tycho up`: `$NAME` / `${NAME}` of the
`.env` settings replaced in the compose TEXT before it is parsed, exactly as Python's
`string.Template(text).safe_substitute(mapping)` (the original's
`TemplateUtils.apply_environment`) does; every HeLx spec of the corpus that the original
accepts renders with its `.env`."""

from __future__ import annotations

import json
import os
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from corpus import helx_corpus
from kube_emulator import kube_emulator, kube_emulator_session  # noqa: F401
from tycho.tycho_utils import TemplateUtils

EXE = shutil.which("tycho") or str(Path(sys.executable).parent / "tycho")
CORPUS = helx_corpus() / "app-specs"
GUID = "ab" * 16

COMPOSE = """services:
  app:
    image: busybox
    ports: ['8080']
    entrypoint: sh -c run
    environment:
      - A=$A
      - "B=${B}"
      - C=$$C and $UNKNOWN and ${UNKNOWN} and $ and ${bad and $1 and ${A}x$Ax
      - D=pre${A}post
      - |-
        E=first $A
        second ${B} $$ third
"""

# Values with `$`, `{`, quotes; the settings text as the original reads it (split on \n).
SETTINGS = [
    "A=plain\nB=two words\n",
    "A=x$y\nB=${A}\n",
    "A={curly}\nB=a}b{c\n",
    "A=it's\nB=say 'hi'\n",
    'A=q"uote\nB=back\\slash\n',
    "A=$$\nB=$\n",
    "A=a=b=c\nB=\n",
    "A=\nB=only B\nA=last wins\n",
]


def tycho(*args, env=None, cwd=None):
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


def python_expected(compose, settings):
    """What the original's substitution makes of the text (None when it is not YAML)."""
    mapping = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in settings.split("\n") if "=" in line}
    text = string.Template(compose).safe_substitute(**mapping)
    assert text == TemplateUtils.apply_environment(settings, compose)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def rendered_env(proc):
    dep = json.loads(proc.stdout)["items"][0]
    return dep["spec"]["template"]["spec"]["containers"][0]["env"]


@pytest.mark.parametrize("settings", SETTINGS, ids=range(len(SETTINGS)))
def test_render_substitutes_like_string_template(tmp_path, settings):
    compose = tmp_path / "app" / "docker-compose.yaml"
    compose.parent.mkdir()
    compose.write_text(COMPOSE)
    env_file = tmp_path / "settings.env"
    env_file.write_text(settings)
    expected = python_expected(COMPOSE, settings)
    proc = tycho("render", "-f", str(compose), "--settings", str(env_file), "--guid", GUID, "-o", "json")
    if expected is None:
        assert proc.returncode == 1 and proc.stderr.startswith("tycho: error:"), proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    env = rendered_env(proc)
    # The compose environment comes first, each entry split at its first '='.
    wanted = [e.split("=", 1) for e in expected["services"]["app"]["environment"]]
    got = [[e["name"], e.get("value", "")] for e in env[: len(wanted)]]
    assert got == [[k, v] for k, v in wanted]


def test_unknown_names_and_escapes_stay(tmp_path):
    compose = tmp_path / "docker-compose.yaml"
    compose.write_text(COMPOSE)
    (tmp_path / ".env").write_text("A=1\n")  # read beside the compose file
    proc = tycho("render", "-f", str(compose), "--guid", GUID, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    env = {e["name"]: e.get("value", "") for e in rendered_env(proc)}
    assert env["C"] == "$C and $UNKNOWN and ${UNKNOWN} and $ and ${bad and $1 and 1x$Ax"
    assert env["B"] == "${B}" and env["A"] == "1" and env["E"] == "first 1\nsecond ${B} $ third"


def test_no_settings_no_substitution(tmp_path):
    # As the original: without settings text, `$$` stays as written.
    compose = tmp_path / "docker-compose.yaml"
    compose.write_text("services:\n  app:\n    image: busybox\n    ports: ['80']\n    environment: ['X=$$Y']\n")
    proc = tycho("render", "-f", str(compose), "-o", "json")
    assert proc.returncode == 0, proc.stderr
    assert {e["name"]: e["value"] for e in rendered_env(proc)}["X"] == "$$Y"


def test_up_substitutes_settings(tmp_path, kube_emulator):  # noqa: F811
    kubeconfig = kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    compose = tmp_path / "web" / "docker-compose.yaml"
    compose.parent.mkdir()
    compose.write_text("services:\n  web:\n    image: nginx:$TAG\n    ports: ['$PORT:$PORT']\n")
    env_file = tmp_path / "prod.env"
    env_file.write_text("TAG=1.25\nPORT=8081\n")
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    env.pop("NAMESPACE", None)
    proc = tycho("up", "-f", str(compose), "--settings", str(env_file), "-o", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    deps = [o for o in kube_emulator.objects() if o["kind"] == "Deployment"]
    deps = [d for d in deps if d["metadata"]["name"].startswith("web-")]
    container = deps[-1]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1.25"
    guid = deps[-1]["metadata"]["labels"]["tycho-guid"]
    svc = next(o for o in kube_emulator.objects() if o["kind"] == "Service" and o["metadata"]["name"] == f"web-{guid}")
    assert [p["port"] for p in svc["spec"]["ports"]] == [8081]


SPECS = sorted(p.parent for p in CORPUS.glob("*/docker-compose.yaml")) if CORPUS.is_dir() else []


def test_corpus_is_there():
    # The corpus ships with the project's shared data; CI points TYCHO_HELX_CORPUS at it.
    if not CORPUS.is_dir():
        pytest.skip(f"HeLx corpus not found at {CORPUS} (set TYCHO_HELX_CORPUS)")
    assert len(SPECS) >= 30


def _corpus_case(spec):
    settings = (spec / ".env").read_text() if (spec / ".env").is_file() else ""
    system = yaml.safe_load(TemplateUtils.apply_environment(settings, (spec / "docker-compose.yaml").read_text()))
    services = {}
    for name, svc in (system.get("services") or {}).items():
        for port in svc.get("ports") or []:
            services[name] = {"port": str(port).split(":")[-1]}
    mapping = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in settings.split("\n") if "=" in line}
    return {"name": spec.name, "environ": {}, "request": {
        "name": "app", "principal": json.dumps({"username": "jdoe"}), "serviceaccount": "default",
        "env": mapping, "system": system, "services": services}}


@pytest.fixture(scope="module")
def corpus_originals():
    from run_oracle import original_objects

    return {r["name"]: r for r in original_objects([_corpus_case(s) for s in SPECS])}


def _valid_for_kubernetes(objects):
    import kubernetes_validate

    try:
        for obj in objects:
            if obj.get("kind") != "__missing_template__":
                kubernetes_validate.validate(obj, "1.30.0", strict=False)
    except kubernetes_validate.ValidationError:
        return False
    return True


@pytest.mark.parametrize("spec", SPECS, ids=[p.name for p in SPECS])
def test_every_corpus_spec_the_original_accepts_renders(spec, tmp_path, corpus_originals):
    # Registry settings ({{ helx_registry }} ...) are a different matter: they render as
    # empty text here; what matters is that $VAR settings make every spec parse and compile.
    orig = corpus_originals[spec.name]
    work = tmp_path / spec.name
    shutil.copytree(spec, work)
    proc = tycho("render", "-f", str(work / "docker-compose.yaml"), "-n", "app", "--guid", GUID, "-o", "json")
    if "objects" not in orig or not _valid_for_kubernetes(orig["objects"]):
        # The original refuses it, or makes objects Kubernetes rejects (e.g. a port left
        # as "$BACKPLANE_PORT" when the spec has no .env): ours may refuse, in one line.
        if proc.returncode != 0:
            assert proc.returncode == 1 and proc.stderr.startswith("tycho: error:"), proc.stderr
            return
    assert proc.returncode == 0, proc.stderr
    items = json.loads(proc.stdout)["items"]
    assert items[0]["kind"] == "Deployment"
    containers = items[0]["spec"]["template"]["spec"]["containers"]
    compose = _corpus_case(spec)["request"]["system"]
    assert sorted(c["name"] for c in containers) == sorted(compose["services"])
