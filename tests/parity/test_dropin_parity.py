"""Drop-in differential test: one script (tests/support/dropin_script.py) uses the
package the way test suites and scripts written for tycho-api 1.17.3 do, and runs
unchanged in the original's virtualenv and in ours. Every value the original produces
must be there in ours, equal (ours may add attributes), except where a COMPATIBILITY.md
row says otherwise: each skipped path below names its row."""

from __future__ import annotations

import functools
import http.server
import json
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import orig_env
import pytest
import yaml
from corpus import helx_corpus

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "support" / "dropin_script.py"
CORPUS = helx_corpus() / "app-specs"

PROBE_SPEC = """version: "3.0"
services:
  probe:
    image: "{{ helx_registry|default('docker.io') }}/helxplatform/jupyter:1.0"
    entrypoint: start.sh --port=8888
    ports: ["8888:8888"]
    environment: ["NB_USER={{ username }}", "MODE=$MODE"]
    deploy:
      resources:
        limits: {cpus: "1", memory: 1G, ephemeralStorage: 2G}
        reservations: {cpus: "0.5", memory: 512M}
"""

# path regex -> the COMPATIBILITY.md row that makes ours differ there.
ROWS = {
    r"\.context\.common_attrs$": "ours has more attributes (stub); compared as a subset below",
    r"\.context\.null_start(_positional)?$": "NullContext.start (the original fails with AttributeError on its _parse_env)",
    r"\.parse\.(dashboard|rstudio-server)$": "int ports / environment as mapping (the original: TypeError)",
    r"\.parse\.env_none$": "env null (the original: TypeError)",
    r"\.render\.(dashboard|rstudio-server)$": "int ports / environment as mapping (no system in the original)",
    r"\.render\.[^.]+\.netpolicy$": "NetworkPolicy template",
    r"\.labels\.tycho-app-id$": "tycho-app-id label",
    r"\.labels\.conn_string$": "conn_string label",
    r"\.services\.[^.]+\[0\]\.resourceversion$": "Service resourceversion",
    r"\.resources\.requests$": "null fields omitted",
    r"\.persistentVolumeReclaimPolicy$": "pv template reclaim policy",
    r"\.render\.pvc_with_keys\[\d\]\.status$": "null fields omitted (status: {})",
    r"\.utils\.api_schema$": "API description (compared by its paths below)",
    r"\.__error__$": "error classes: compared by test_same_failures",
    r"\.principal$": "values are strings (compared as JSON below)",
    r"\.render\.[^.]+\.pod[a-z_]*\[\d+\]\.spec\.containers\[\d+\]\.env$": "ACCESS_TOKEN by Secret (compared below)",
}


def _skipped(path):
    return any(re.search(rx, path) for rx in ROWS)


def assert_contained(orig, ours, path=""):
    """Every value of ``orig`` is in ``ours`` (dict keys may be extra in ours)."""
    if _skipped(path) or (isinstance(orig, dict) and "__error__" in orig):
        return  # failures are compared by test_same_failures
    if isinstance(orig, dict) and isinstance(ours, dict):
        for k, v in orig.items():
            if (v is None and k not in ours) or _skipped(f"{path}.{k}"):
                continue  # row 'null fields omitted', or a row of ROWS
            assert k in ours, f"{path}.{k}: missing in ours (original: {str(v)[:200]})"
            assert_contained(v, ours[k], f"{path}.{k}")
    elif isinstance(orig, list) and isinstance(ours, list):
        assert len(orig) == len(ours), f"{path}: {len(orig)} vs {len(ours)} items\n{orig}\n{ours}"
        for i, (a, b) in enumerate(zip(orig, ours)):
            assert_contained(a, b, f"{path}[{i}]")
    else:
        assert orig == ours, f"{path}: original {orig!r} vs ours {ours!r}"


def _composes():
    out = []
    for d in ["nginx", "jupyter-ds", "rstudio-server", "webtop-gpu", "dashboard"]:
        out.append(("examples/" + d, yaml.safe_load((ROOT / "examples" / d / "docker-compose.yaml").read_text())))
    for d in ["jupyter-ds", "rstudio-server", "filebrowser", "webtop"]:
        path = CORPUS / d / "docker-compose.yaml"
        if path.is_file():
            out.append(("corpus/" + d, yaml.safe_load(path.read_text())))
    composes = []
    for where, system in out:
        name = where.split("/")[-1]
        services = {n: {"port": str(s["ports"][0]).split(":")[-1], "clients": []}
                    for n, s in system["services"].items() if s.get("ports")}
        composes.append({"name": name if where.startswith("examples") else name + "-c",
                         "where": where, "system": system,
                         "env": {"MODE": "x", "helx_registry": "docker.io"}, "services": services})
    return composes


# The NetworkPolicy template of the original's repository, as it behaves (the published
# wheel lacks it): a policy selecting the system's pod that admits every `services`
# entry's clients on every entry's port. Written for this test from that behaviour.
NETPOLICY_TEMPLATE = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ system.name }}-netpolicy
  labels:
    tycho-guid: {{ system.identifier }}
spec:
  podSelector:
    matchLabels:
      tycho-guid: {{ system.identifier }}
  policyTypes:
  - Ingress
  ingress:
  - from:
{%- for name, service in system.services.items() %}
{%- for client in service.clients %}
    - ipBlock:
        cidr: {{ client }}
{%- endfor %}
{%- endfor %}
    ports:
{%- for name, service in system.services.items() %}
    - protocol: TCP
      port: {{ service.port }}
{%- endfor %}
"""

# The original's template test: `services` names `jupyter-datascience` for the compose
# service `jupyter-ds`.
NETPOLICY_REQUEST = {
    "name": "jupyter-ds",
    "system": {"version": "3.0", "services": {"jupyter-ds": {"image": "jupyter/datascience-notebook:latest",
                                                            "ports": ["8888:8888"]}}},
    "env": {},
    "services": {"jupyter-datascience": {"port": "8888", "clients": ["10.16.0.0/16", "192.168.8.0/24"]}},
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    (site / "probe").mkdir()
    (site / "probe" / "docker-compose.yaml").write_text(PROBE_SPEC)
    (site / "probe" / ".env").write_text("MODE=lab\nPORT=8888\n")
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    payload = {"composes": _composes(), "tmp": str(tmp_path_factory.mktemp("res")),
               "spec_url": f"http://127.0.0.1:{server.server_port}/probe/docker-compose.yaml",
               "netpolicy_template": NETPOLICY_TEMPLATE, "netpolicy_request": NETPOLICY_REQUEST}
    out = {}
    try:
        for side, py in (("original", orig_env.ensure_original_venv()), ("ours", sys.executable)):
            with tempfile.TemporaryDirectory(prefix=f"dropin-{side}-") as work:
                proc = subprocess.run([py, str(SCRIPT)], input=json.dumps(payload), capture_output=True, text=True,
                                      env=orig_env.isolated_env(work), cwd=work, timeout=600)
            assert proc.returncode == 0, f"{side}: {proc.stderr[-4000:]}"
            out[side] = json.loads(proc.stdout)
    finally:
        server.shutdown()
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


SECTIONS = ["parse", "render", "constructors", "user_templates", "utils", "client", "context"]


@pytest.mark.parametrize("section", SECTIONS)
def test_same_values_as_original(results, section):
    assert_contained(results["original"][section], results["ours"][section], "." + section)


def test_network_policy_template_of_the_original_repository(results):
    """A services entry that names no compose service stays in `system.services`: the
    original's template admits its clients on its port, with ours exactly as with it."""
    theirs = results["original"]["user_templates"]["netpolicy_named_entry"]
    ours = results["ours"]["user_templates"]["netpolicy_named_entry"]
    assert "__error__" not in theirs, theirs
    assert ours == theirs
    assert ours["services"] == ["jupyter-datascience"] and ours["requires_network_policy"] is True
    (policy,) = ours["netpolicy"]
    (rule,) = policy["spec"]["ingress"]
    assert [b["ipBlock"]["cidr"] for b in rule["from"]] == ["10.16.0.0/16", "192.168.8.0/24"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8888}]


def _pod_envs(render):
    for name, docs in render.items():
        if not isinstance(docs, dict):
            continue
        for key, pods in docs.items():
            if key.startswith("pod") and isinstance(pods, list):
                for i, pod in enumerate(pods):
                    if isinstance(pod, dict):
                        for j, c in enumerate(pod.get("spec", {}).get("containers", [])):
                            yield f"{name}.{key}[{i}].containers[{j}]", c.get("env", [])


def test_render_env_is_the_original_plus_the_token_reference(results):
    """Row 'ACCESS_TOKEN by Secret': ours inserts ACCESS_TOKEN after USER and reads the
    principal's token fields from the system's Secret; every other entry is the original's."""
    theirs = dict(_pod_envs(results["original"]["render"]))
    mine = dict(_pod_envs(results["ours"]["render"]))
    assert theirs and set(theirs) <= set(mine)
    for where, env in theirs.items():
        ours = mine[where]
        ours_names = [e["name"] for e in ours]
        expected = [e["name"] for e in env]
        if "USER" in expected and "ACCESS_TOKEN" in ours_names:
            expected.insert(expected.index("USER") + 1, "ACCESS_TOKEN")
        assert ours_names == expected, where
        rest = [e for e in ours if e["name"] != "ACCESS_TOKEN"]
        for orig_entry, e in zip(env, rest):
            if "valueFrom" in e:
                assert e["valueFrom"]["secretKeyRef"]["name"].endswith("-tokens"), (where, e)
                assert e["name"] in ("access_token", "refresh_token"), (where, e)
            else:
                assert e == orig_entry, (where, e)


def _errors(v, path=""):
    if isinstance(v, dict):
        if "__error__" in v:
            yield path
        for k, x in v.items():
            yield from _errors(x, f"{path}.{k}")
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from _errors(x, f"{path}[{i}]")


# Where the original fails, and ours does not, by a COMPATIBILITY.md row.
ORIGINAL_ONLY_FAILURES = {
    ".context.null_start", ".context.null_start_positional",  # row 'NullContext.start'
    ".parse.dashboard",  # rows 'int ports', 'environment as mapping'
    ".parse.rstudio-server",  # the same rows (`8787:8787` unquoted is a YAML 1.1 integer)
    ".parse.env_none",  # row 'env null' (the original: TypeError iterating None)
}


def test_same_failures(results):
    theirs = {p for p in _errors(results["original"]) if not re.search(r"\.netpolicy$", p)}
    mine = set(_errors(results["ours"]))
    assert theirs - ORIGINAL_ONLY_FAILURES == mine, (sorted(theirs - ORIGINAL_ONLY_FAILURES - mine),
                                                     sorted(mine - theirs))


def test_the_script_covers_what_it_claims(results):
    o = results["ours"]
    assert len(o["parse"]) >= 8 and all("system" in v for k, v in o["parse"].items() if k not in ("positional", "env_none"))
    # Row 'env null': no templating pass at all.
    assert o["parse"]["env_none"]["containers"][0]["env"] == [["U", "{{ username }}"]]
    assert {"pod", "pvc", "pv", "netpolicy", "services"} <= set(o["render"]["nginx"])
    assert o["render"]["nginx"]["pod_next_kind"] == "Pod"
    assert o["context"]["live_system"]["containers"][0]["name"] == "probe"
    assert o["client"]["parse_env"][1] == {"A": "1\r", "B": "2\r"}
    # `except KeyError` / `except ValueError` of suites still catch ours.
    assert o["context"]["unknown_app_is_keyerror"] is True
    assert o["utils"]["missing_template_is_valueerror"] is True


def test_principal_and_api_routes(results):
    o, t = results["original"]["context"], results["ours"]["context"]
    assert json.loads(o["live_request"][0]["principal"]) == json.loads(t["live_request"][0]["principal"])
    ours_paths = set(results["ours"]["utils"]["api_schema"]["paths"])
    assert set(results["original"]["utils"]["api_schema"]["paths"]) <= ours_paths


def test_null_start_of_ours_lists_the_registry_services(results):
    # Row 'NullContext.start': the original fails; ours answers like appstore's stub mode.
    system = results["ours"]["context"]["null_start"]
    assert system["__class__"] == "TychoSystem" and system["status"] == "ok"
    assert [s["name"] for s in system["services"]] == ["probe"]
