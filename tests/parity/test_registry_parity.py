"""Differential test of the bundled app registry: every context of the original tycho-api
1.17.3 is resolved by the original (in its own virtualenv, tests/support/orig_env.py) and
by ours, each context in a fresh process of its own (tests/support/registry_driver.py),
with no ``tycho_config_url`` (both read the registry in their package) and the network
fenced off. Compared, in order and by type:

* ``TychoContext(product=P).apps``: the app ids and every key of every app (names,
  descriptions, details, docs, services, counts, ``ext`` probes after defaults and mixins,
  ``securityContext``/``conn_string`` from the context, resolved ``spec`` and ``icon``);
* the registry document (``registry``: metadata, repositories, settings, every context)
  and ``app_defaults`` — ours may only add contexts;
* ``get_settings(app_id)`` of every app, served by a local HTTP server (the spec URLs are
  pointed at it after they have been compared);
* the spec URLs again with ``DOCKSTORE_APPS_BRANCH`` switched on.

Our additions (the newer appstore brands of issue 15 and ``testing``) are checked against
the original's contexts they stand for.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orig_env
import pytest

DRIVER = Path(__file__).resolve().parents[1] / "support" / "registry_driver.py"

# The contexts of the original's conf/app-registry.yaml (checked against the original
# itself by test_the_original_has_these_contexts).
ORIGINAL_CONTEXTS = [
    "sys", "common", "braini", "bdc", "scidas", "blackbalsam", "restartr", "heal", "argus",
    "eduhelx", "tracs", "eduhelx-sandbox", "eduhelx-chip690",
]
# Ours only: appstore brands the original has no context for, the mixin that adjusts
# their apps, and the smoke-test product.
ADDITIONS = [
    "eduhelx-dev", "eduhelx-dev-student", "eduhelx-dev-professor", "eduhelx-student",
    "eduhelx-professor", "sys-additions", "testing",
]

# .env files served for get_settings; any other app answers 404, pgadmin 500.
ENV_FILES = {
    "jupyter-ds": "# settings\nJUPYTER_ENABLE_LAB=yes\nCPUS=2\n",
    "filebrowser": "FB_BASEURL=/private/filebrowser\nQUOTED=\"a $b {c}\"\n",
    "cloud-top": "USER_NAME=$USER\n",
    "rstudio-server": "DISABLE_AUTH=true\nMULTI='one\\ntwo'\n",
    "blackbalsam": "SPARK_MASTER=spark://master:7077\n",
    "sas-studio": "",
    "webtop": "PUID=1000\nPGID=1000\n",
    "imagej": "X=1",
}
FAILING = {"pgadmin": 500}


class _EnvHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        parts = self.path.rstrip("/").split("/")
        app = parts[-2] if len(parts) >= 2 and parts[-1] == ".env" else None
        if app in FAILING:
            self._answer(FAILING[app], b"server error")
        elif app in ENV_FILES:
            self._answer(200, ENV_FILES[app].encode())
        else:
            self._answer(404, b"not found")

    def _answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def env_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EnvHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def orig_python():
    return orig_env.ensure_original_venv()


def run_driver(python, job, extra_env=None):
    with tempfile.TemporaryDirectory(prefix="tycho-registry-parity-") as home:
        env = orig_env.isolated_env(home, extra_env)
        for name in ("DOCKSTORE_APPS_BRANCH", "EXTERNAL_TYCHO_APP_REGISTRY_ENABLED"):
            if not extra_env or name not in extra_env:
                env.pop(name, None)
        env.pop("DEV_PHASE", None)
        proc = subprocess.run(
            [python, str(DRIVER)], input=json.dumps(job), env=env, cwd=home,
            capture_output=True, text=True, timeout=600, check=False,
        )
    assert proc.returncode == 0, f"{python} {DRIVER} failed:\n{proc.stderr[-6000:]}"
    return json.loads(proc.stdout)


def resolve_both(orig_python, products, settings_base, extra_env=None):
    job = {"mode": "resolve", "products": products, "settings_base": settings_base}
    theirs = run_driver(orig_python, job, extra_env)
    mine = run_driver(sys.executable, job, extra_env)
    return {r["product"]: r for r in theirs}, {r["product"]: r for r in mine}


@pytest.fixture(scope="module")
def resolved(orig_python, env_server):
    return resolve_both(orig_python, ORIGINAL_CONTEXTS + ADDITIONS, env_server)


def assert_same(theirs, mine, where):
    """Equal values of equal types, mappings with their keys in the same order."""
    assert type(mine) is type(theirs), f"{where}: {theirs!r} (original) vs {mine!r} (ours)"
    if isinstance(theirs, dict):
        assert list(mine) == list(theirs), f"{where}: keys {list(theirs)} (original) vs {list(mine)} (ours)"
        for key in theirs:
            assert_same(theirs[key], mine[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert len(mine) == len(theirs), f"{where}: {theirs!r} (original) vs {mine!r} (ours)"
        for i, (a, b) in enumerate(zip(theirs, mine)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert mine == theirs, f"{where}: {theirs!r} (original) vs {mine!r} (ours)"


def test_the_original_has_these_contexts(orig_python):
    assert run_driver(orig_python, {"mode": "contexts"}) == ORIGINAL_CONTEXTS


def test_our_registry_is_the_originals_plus_additions(resolved):
    theirs, mine = resolved[0]["common"], resolved[1]["common"]
    ours_registry = dict(mine["registry"])
    ours_contexts = dict(ours_registry.pop("contexts"))
    theirs_registry = dict(theirs["registry"])
    theirs_contexts = theirs_registry.pop("contexts")
    assert ours_registry == theirs_registry  # api, version, metadata, repositories, settings
    assert list(ours_contexts)[: len(theirs_contexts)] == list(theirs_contexts)
    assert sorted(set(ours_contexts) - set(theirs_contexts)) == sorted(ADDITIONS)
    for name, context in theirs_contexts.items():
        assert ours_contexts[name] == context, name
    assert mine["app_defaults"] == theirs["app_defaults"]
    # Our files read by PyYAML (as the original or any other tool would) give the same data.
    import tycho
    import yaml

    conf = Path(tycho.__file__).parent / "conf"
    assert yaml.safe_load((conf / "app-registry.yaml").read_text()) == mine["registry"]
    assert yaml.safe_load((conf / "app-defaults.yaml").read_text()) == mine["app_defaults"]


@pytest.mark.parametrize("product", ORIGINAL_CONTEXTS)
def test_context_resolves_like_the_original(resolved, product):
    theirs, mine = resolved[0][product], resolved[1][product]
    # Construction with no tycho_config_url reads the package's files only.
    assert theirs["network"] == [] and mine["network"] == []
    assert "error" not in mine, mine.get("trace")
    if product == "sys":
        # The mixin-only context names apps without docs: the original fails on
        # app["docs"]; ours leaves docs out (COMPATIBILITY.md row "registry fields").
        assert (theirs["error"], theirs["message"]) == ("KeyError", "'docs'")
        assert list(mine["apps"]) == list(resolved[1]["common"]["registry"]["contexts"]["sys"]["apps"])
        assert all("docs" not in app and app["spec"].endswith(f"/{app_id}/docker-compose.yaml")
                   for app_id, app in mine["apps"].items())
        return
    assert "error" not in theirs, theirs.get("trace")
    assert_same(theirs["apps"], mine["apps"], f"{product}.apps")
    assert_same(theirs["spec_urls"], mine["spec_urls"], f"{product}.spec")
    # The context's own entry (its key order changes nothing it resolves to).
    assert theirs["registry"]["contexts"][product] == mine["registry"]["contexts"][product]
    assert_same(theirs["settings"], mine["settings"], f"{product}.get_settings")
    # The served .env files reached both (not everything "").
    served = [a for a in theirs["apps"] if a in ENV_FILES and ENV_FILES[a]]
    assert all(mine["settings"][a] == ENV_FILES[a] for a in served)


def test_the_catalogues_the_issue_names(resolved):
    theirs, mine = resolved
    assert list(mine["argus"]["apps"]) == ["jupyter-ds", "filebrowser", "webtop-octave", "kstars", "cloud-top"]
    assert list(mine["eduhelx-sandbox"]["apps"]) == ["jupyter-education", "rstudio-server", "webtop"]
    assert mine["eduhelx-sandbox"]["apps"]["webtop"]["securityContext"] == {"fsGroup": 0, "runAsUser": 0,
                                                                            "runAsGroup": 0}
    assert list(theirs["argus"]["apps"]) == list(mine["argus"]["apps"])


def test_dockstore_branch_switch_moves_every_spec(orig_python, env_server):
    switch = {"EXTERNAL_TYCHO_APP_REGISTRY_ENABLED": "false", "DOCKSTORE_APPS_BRANCH": "develop"}
    products = [p for p in ORIGINAL_CONTEXTS if p != "sys"]
    theirs, mine = resolve_both(orig_python, products, env_server, switch)
    for product in products:
        assert_same(theirs[product]["spec_urls"], mine[product]["spec_urls"], product)
        assert all("/raw/develop/app-specs/" in url for url in mine[product]["spec_urls"].values())


@pytest.mark.parametrize(("brand", "stands_for"), [
    ("eduhelx-student", "eduhelx"),
    ("eduhelx-professor", "eduhelx"),
])
def test_new_eduhelx_brands_offer_the_originals_eduhelx_apps(resolved, brand, stands_for):
    theirs, mine = resolved
    assert mine[brand]["network"] == []
    assert_same(theirs[stands_for]["apps"], mine[brand]["apps"], brand)
    assert_same(theirs[stands_for]["settings"], mine[brand]["settings"], brand)


@pytest.mark.parametrize("brand", ["eduhelx-dev-student", "eduhelx-dev-professor"])
def test_new_eduhelx_dev_brands_offer_the_eduhelx_dev_apps(resolved, brand):
    mine = resolved[1]
    assert_same(mine["eduhelx-dev"]["apps"], mine[brand]["apps"], brand)


def test_eduhelx_dev_is_helx_apps_definition(resolved):
    theirs, mine = resolved
    dev = mine["eduhelx-dev"]["apps"]
    assert list(dev) == ["jupyter-lab", "jupyter-education", "filebrowser", "cloud-top"]
    lab = dev["jupyter-lab"]
    assert lab["securityContext"] == {"runAsUser": 1000, "fsGroup": 1136}
    assert lab["gitea-integration"] is True and lab["proxy-rewrite-rule"] is True
    assert lab["ext"]["kube"]["livenessProbe"] == {"cmd": ["pgrep", "jupyter"], "delay": 5, "period": 5}
    assert lab["spec"] == "https://github.com/helxplatform/helx-apps/raw/master/app-specs/jupyter-lab/docker-compose.yaml"
    # The other three are the original's eduhelx apps, field by field.
    for app_id in ("jupyter-education", "filebrowser", "cloud-top"):
        assert_same(theirs["eduhelx"]["apps"][app_id], dev[app_id], app_id)


def test_testing_product_is_common_plus_nginx(resolved):
    theirs, mine = resolved
    apps = dict(mine["testing"]["apps"])
    nginx = apps.pop("nginx")
    assert_same(theirs["common"]["apps"], apps, "testing")
    assert nginx["proxy-rewrite"] == {"enabled": True, "target": "/"}
    assert nginx["ext"] == {"kube": {"readinessProbe": "none"}}
    assert nginx["spec"] == "https://github.com/helxplatform/helx-apps/raw/master/app-specs/nginx/docker-compose.yaml"


def test_fresh_processes_are_needed_and_ours_needs_none(orig_python):
    """The original keeps the apps of earlier contexts built in the same process
    (COMPATIBILITY.md row "registry inheritance"), which is why every context above is
    resolved in a process of its own; ours gives each context its own apps."""
    job = {"mode": "sequence", "products": ["eduhelx", "tracs"]}
    theirs = run_driver(orig_python, job)
    mine = run_driver(sys.executable, job)
    assert mine == [["jupyter-education", "filebrowser", "cloud-top"], ["atlas", "rstudio-server"]]
    assert theirs[0] == mine[0]
    assert theirs[1] == mine[0] + mine[1]
