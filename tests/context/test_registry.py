"""TychoContext against a registry served over HTTP from 127.0.0.1.

Covers: contexts with extends chains and mixins, app-defaults, relative and absolute
repository URLs, $repository substitution, product-level app entries, spec templates
rendered with the registry settings, .env settings, clear errors naming URL and HTTP
status, the in-memory cache's revalidation (ETag and Last-Modified, 304 answers),
timeouts, and fetches running in parallel threads (the native client releases the GIL).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
from tycho import _native
from tycho.client import TychoSystem
from tycho.context import ContextFactory, Principal, RegistryHttpCache, TychoContext, mixin_merge
from tycho.exceptions import ContextException

REGISTRY = """
api: Tycho
version: 0.1.0
repositories:
  local:
    description: app specs next to this registry
    url: apps
  remote:
    description: another repository, absolute
    url: {base}other
settings:
  registry_host: reg.example.org
  tag: "2024.1"
contexts:
  tweaks:
    apps:
      alpha:
        ext:
          kube:
            livenessProbe:
              cmd: ["pgrep", "alpha"]
        tags: [mixed]
      gamma:
        ext:
          kube:
            readinessProbe: none
  base:
    name: Base
    apps:
      alpha:
        name: Alpha
        docs: $remote/docs/alpha.html
        services:
          alpha: 8080
        tags: [one, two]
        count: 1
      beta:
        name: Beta (base)
        services:
          beta: "9000"
  middle:
    name: Middle
    extends: [base]
    mixin: [tweaks]
    apps:
      beta:
        name: Beta (middle)
        services:
          beta: "9001"
      gamma:
        name: Gamma
        spec: $remote/gamma/docker-compose.yaml
        services:
          gamma: "80"
        env:
          GAMMA_MODE: fast
  top:
    name: Top
    extends: [middle]
    alpha:
      securityContext:
        runAsUser: 1000
        fsGroup: 100
    apps:
      delta:
        name: Delta (spec missing)
        services:
          delta: "80"
  loop-a:
    extends: [loop-b]
  loop-b:
    extends: [loop-a]
  orphan:
    extends: [no-such-context]
"""

DEFAULTS = """
ext:
  kube:
    readinessProbe:
      httpGet:
        path: "/private/{{ system_name }}/{{ username }}/{{ identifier }}"
        port: "{{ system_port }}"
"""

ALPHA_SPEC = """
version: "3.0"
services:
  alpha:
    image: "{{ registry_host }}/alpha:{{ tag }}"
    ports:
      - "8080"
    deploy:
      resources:
        limits:
          cpus: "2"
          memory: 2G
          ephemeralStorage: 5G
        reservations:
          cpus: "1"
          memory: 1G
"""

GAMMA_SPEC = """
version: "3.0"
services:
  gamma:
    image: nginx:1.25
    ports: ["80"]
    deploy:
      resources:
        limits: {cpus: "1", memory: 512M}
        reservations: {cpus: "0.5", memory: 256M}
"""


class RegistryServer:
    """Serves ``files`` (path -> text) with ETag and Last-Modified; logs every request."""

    def __init__(self):
        self.files = {}
        self.mtimes = {}
        self.use_etag = True
        self.log = []
        self.down = False
        self.delays = {}  # path -> seconds to wait before answering
        self.errors = {}  # path -> HTTP status to answer instead
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                path = self.path.split("?", 1)[0]
                if path in server.delays:
                    time.sleep(server.delays[path])
                if path in server.errors:
                    server.log.append((path, server.errors[path], {}))
                    self.send_error(server.errors[path])
                    return
                # Header names are case-insensitive: log them in lower case.
                headers = {k.lower(): v for k, v in self.headers.items()}
                if path not in server.files:
                    server.log.append((path, 404, headers))
                    self.send_error(404)
                    return
                body = server.files[path].encode()
                etag = '"' + hashlib.sha1(body).hexdigest() + '"'
                modified = email.utils.formatdate(server.mtimes[path], usegmt=True)
                fresh = False
                if server.use_etag and "If-None-Match" in self.headers:
                    fresh = self.headers["If-None-Match"] == etag
                elif "If-Modified-Since" in self.headers:
                    since = email.utils.parsedate_to_datetime(self.headers["If-Modified-Since"]).timestamp()
                    fresh = int(server.mtimes[path]) <= since
                if fresh:
                    server.log.append((path, 304, headers))
                    self.send_response(304)
                    self.end_headers()
                    return
                server.log.append((path, 200, headers))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Last-Modified", modified)
                if server.use_etag:
                    self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

            def handle(self):
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def put(self, path, text, mtime=None):
        self.files[path] = text
        self.mtimes[path] = mtime if mtime is not None else time.time() - 100

    def requests_for(self, path):
        return [entry for entry in self.log if entry[0] == path]

    def start(self):
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    monkeypatch.delenv("REST_API", raising=False)
    srv = RegistryServer()
    srv.put("/registry/app-registry.yaml", REGISTRY.replace("{base}", srv.base))
    srv.put("/registry/app-defaults.yaml", DEFAULTS)
    srv.put("/registry/apps/alpha/docker-compose.yaml", ALPHA_SPEC)
    srv.put("/registry/apps/alpha/.env", "ALPHA_HOME=/home/alpha\nGREETING=hi=there\n")
    srv.put("/registry/apps/beta/docker-compose.yaml", ALPHA_SPEC.replace("alpha", "beta"))
    srv.put("/other/gamma/docker-compose.yaml", GAMMA_SPEC)
    srv.start()
    yield srv
    srv.stop()


def make_context(server, product="top", max_age=0.0):
    context = TychoContext(product=product, tycho_config_url=server.base + "registry")
    context.http_session.max_age = max_age
    return context


def test_compiled_apps(server):
    context = make_context(server)
    assert context.tycho_config_url == server.base + "registry/"
    apps = context.apps
    assert set(apps) == {"alpha", "beta", "gamma", "delta"}
    # extends chain: middle's beta replaces base's beta; top's own app is added
    assert apps["beta"]["name"] == "Beta (middle)" and apps["beta"]["services"] == {"beta": "9001"}
    alpha = apps["alpha"]
    # relative repository resolved against tycho_config_url; icon beside the spec
    assert alpha["spec"] == server.base + "registry/apps/alpha/docker-compose.yaml"
    assert alpha["icon"] == server.base + "registry/apps/alpha/icon.png"
    # $repo substitution in docs and spec
    assert alpha["docs"] == server.base + "other/docs/alpha.html"
    assert apps["gamma"]["spec"] == server.base + "other/gamma/docker-compose.yaml"
    assert apps["gamma"]["icon"] == server.base + "other/gamma/icon.png"
    # app-defaults merged, then the mixin: dicts merge, lists and scalars replace
    assert alpha["ext"]["kube"]["readinessProbe"]["httpGet"]["port"] == "{{ system_port }}"
    assert alpha["ext"]["kube"]["livenessProbe"] == {"cmd": ["pgrep", "alpha"]}
    assert alpha["tags"] == ["mixed"]
    assert apps["gamma"]["ext"] == {"kube": {"readinessProbe": "none"}}
    assert apps["beta"]["ext"]["kube"]["readinessProbe"]["httpGet"]["path"].startswith("/private/")
    # top-level entry of the product context merged into the app
    assert alpha["securityContext"] == {"runAsUser": 1000, "fsGroup": 100}


def test_base_context_does_not_see_later_apps(server):
    base = make_context(server, product="base")
    assert set(base.apps) == {"alpha", "beta"}
    assert base.apps["beta"]["name"] == "Beta (base)"
    assert "livenessProbe" not in base.apps["alpha"]["ext"]["kube"]  # base has no mixin
    assert base.apps["alpha"]["tags"] == ["one", "two"]
    # a second context in the same process starts from scratch
    again = make_context(server, product="base")
    assert set(again.apps) == {"alpha", "beta"}


def test_bad_contexts(server):
    with pytest.raises(ContextException, match="cycle"):
        make_context(server, product="loop-a")
    with pytest.raises(ContextException, match="no-such-context"):
        make_context(server, product="orphan")
    with pytest.raises(ContextException, match="undefined product"):
        make_context(server, product="nothing")


def test_missing_registry_names_url_and_status(server):
    with pytest.raises(ContextException) as info:
        TychoContext(product="top", tycho_config_url=server.base + "elsewhere")
    message = str(info.value)
    assert server.base + "elsewhere/app-registry.yaml" in message and "404" in message


def test_spec_rendered_with_settings(server):
    context = make_context(server)
    spec = context.get_spec("alpha")
    assert spec["services"]["alpha"]["image"] == "reg.example.org/alpha:2024.1"
    assert spec["services"]["alpha"]["deploy"]["resources"]["limits"]["memory"] == "2G"
    spec["services"]["alpha"]["image"] = "changed"  # callers get copies
    assert context.get_spec("alpha")["services"]["alpha"]["image"] == "reg.example.org/alpha:2024.1"
    definition = context.get_definition("alpha")
    assert definition["services"]["alpha"]["image"] == "reg.example.org/alpha:2024.1"
    assert context.apps["alpha"]["definition"] == definition
    assert context.get_spec("gamma")["services"]["gamma"]["image"] == "nginx:1.25"


def test_settings_from_dot_env(server):
    context = make_context(server)
    assert context.get_settings("alpha") == "ALPHA_HOME=/home/alpha\nGREETING=hi=there\n"
    assert context.get_settings("beta") == ""  # no .env: empty settings
    settings = context.client.parse_env(context.get_settings("alpha"))
    assert context.get_env_registry("gamma", dict(settings))["GAMMA_MODE"] == "fast"


def test_missing_spec_names_url_and_status(server):
    context = make_context(server)
    with pytest.raises(ContextException) as info:
        context.get_spec("delta")
    message = str(info.value)
    assert server.base + "registry/apps/delta/docker-compose.yaml" in message
    assert "404" in message
    with pytest.raises(ContextException, match="404"):
        context.get_definition("delta")
    with pytest.raises(ContextException, match="not in the top registry"):
        context.get_spec("nope")


def test_revalidation_with_etag(server):
    context = make_context(server, max_age=0)
    path = "/registry/apps/alpha/docker-compose.yaml"
    context.get_spec("alpha")
    context.get_spec("alpha")
    (first, second) = server.requests_for(path)
    assert first[1] == 200 and "if-none-match" not in first[2]
    assert second[1] == 304 and second[2]["if-none-match"].startswith('"')
    assert context.http_session.stats["not_modified"] >= 1
    server.put(path, ALPHA_SPEC.replace("{{ tag }}", "v2"))
    assert context.get_spec("alpha")["services"]["alpha"]["image"] == "reg.example.org/alpha:v2"
    assert server.requests_for(path)[-1][1] == 200


def test_revalidation_with_last_modified(server):
    server.use_etag = False
    context = make_context(server, max_age=0)
    path = "/registry/apps/alpha/docker-compose.yaml"
    assert context.get_spec("alpha")["services"]["alpha"]["image"] == "reg.example.org/alpha:2024.1"
    assert context.get_spec("alpha")["services"]["alpha"]["image"] == "reg.example.org/alpha:2024.1"
    statuses = [entry[1] for entry in server.requests_for(path)]
    assert statuses == [200, 304]
    assert "if-modified-since" in server.requests_for(path)[1][2]
    assert "if-none-match" not in server.requests_for(path)[1][2]
    server.put(path, ALPHA_SPEC.replace("{{ tag }}", "v3"), mtime=time.time() + 10)
    assert context.get_spec("alpha")["services"]["alpha"]["image"] == "reg.example.org/alpha:v3"


def test_fresh_cache_is_not_revalidated(server):
    context = make_context(server, max_age=3600)
    context.get_spec("alpha")
    context.get_spec("alpha")
    context.get_definition("alpha")
    assert len(server.requests_for("/registry/apps/alpha/docker-compose.yaml")) == 1
    assert context.http_session.stats["hits"] >= 2


def test_cached_copy_survives_an_outage(server):
    context = make_context(server, max_age=0)
    context.get_spec("alpha")
    server.stop()
    assert context.get_spec("alpha")["services"]["alpha"]["image"] == "reg.example.org/alpha:2024.1"
    server.httpd = ThreadingHTTPServer(("127.0.0.1", 0), server.httpd.RequestHandlerClass)  # for fixture teardown
    server.thread = threading.Thread(target=server.httpd.serve_forever, args=(0.05,), daemon=True)
    server.thread.start()
    with pytest.raises(ContextException, match="cannot fetch"):
        context.get_spec("gamma")  # never fetched, server gone


def test_start_against_served_registry(server, caplog):
    context = make_context(server)

    def fake_start(request):
        return TychoSystem(status="success", message="", result={
            "name": f"{request['name']}-g", "sid": "g", "conn_string": "",
            "containers": {k: {"ip_address": None, "port-1": int(v["port"])} for k, v in request["services"].items()}})

    with caplog.at_level("DEBUG"):
        with mock.patch.object(TychoContext, "_start", side_effect=fake_start) as start:
            system = context.start(Principal("jdoe", "tok-access", "tok-refresh"), "alpha",
                                   {"deploy": {"resources": {"limits": {"cpus": 1, "memory": "1G"},
                                                             "reservations": {"cpus": 1, "memory": "1G"}}}},
                                   "helx.example.org", {"COURSE": "bio101"})
    assert system.services[0].name == "alpha" and system.services[0].port == 8080
    (request,) = start.call_args[0]
    assert request["env"] == {"ALPHA_HOME": "/home/alpha", "GREETING": "hi=there"}
    assert request["services"] == {"alpha": {"port": "8080", "clients": []}}
    service = request["system"]["services"]["alpha"]
    assert service["image"] == "reg.example.org/alpha:2024.1"
    assert service["deploy"]["resources"]["limits"] == {"cpus": 1, "memory": "1G", "ephemeralStorage": "5G"}
    assert request["system"]["security_context"] == {"runAsUser": 1000, "fsGroup": 100}
    assert json.loads(request["principal"])["extra_container_env"] == {"COURSE": "bio101"}
    assert "tok-access" not in caplog.text and "tok-refresh" not in caplog.text


def test_factory_live_context_uses_url(server, monkeypatch):
    monkeypatch.setattr(ContextFactory, "_state", {})
    live = ContextFactory().get(product="middle", context_type="live", tycho_config_url=server.base + "registry")
    assert set(live.apps) == {"alpha", "beta", "gamma"}


def test_registry_http_cache_direct(server):
    cache = RegistryHttpCache(max_age=0)
    first = cache.get(server.base + "registry/app-defaults.yaml")
    second = cache.get(server.base + "registry/app-defaults.yaml")
    assert first.status_code == 200 and not first.from_cache
    assert second.status_code == 200 and second.from_cache and second.revalidated
    assert second.text == first.text
    missing = cache.get(server.base + "nothing-here")
    assert missing.status_code == 404 and not missing.ok


def test_mixin_merge_semantics():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": [1], "c": "keep", "d": {"z": 1}, "s": {1}}
    merged = mixin_merge(base, {"a": {"y": [3], "w": 2}, "b": [2, 3], "d": "none", "e": 5, "s": {2}})
    assert merged == {"a": {"x": 1, "y": [3], "w": 2}, "b": [2, 3], "c": "keep", "d": "none", "e": 5, "s": {1, 2}}
    assert mixin_merge.merge({"k": {"a": 1}}, {"k": {"b": 2}}) == {"k": {"a": 1, "b": 2}}


def test_compile_steps_one_by_one(server):
    context = make_context(server)
    contexts = context.registry["contexts"]
    apps = context.inherit(contexts, contexts["top"])
    assert list(apps) == ["alpha", "beta", "gamma", "delta"] and apps["beta"]["name"] == "Beta (middle)"
    given = {"zeta": {"name": "kept"}}
    assert context.inherit(contexts, contexts["base"], given) is given and set(given) == {"zeta", "alpha", "beta"}
    context.mixin_defaults(apps)
    assert apps["alpha"]["ext"]["kube"]["readinessProbe"]["httpGet"]["port"] == "{{ system_port }}"
    assert context.mixin(contexts, contexts["top"], apps) is not None
    assert apps["gamma"]["ext"] == {"kube": {"readinessProbe": "none"}} and apps["alpha"]["tags"] == ["mixed"]
    context.add_conf_impl(apps, contexts["top"])
    assert apps["alpha"]["securityContext"] == {"runAsUser": 1000, "fsGroup": 100}
    assert context._grok() == context.apps


def test_spec_with_a_bad_template_names_the_url(server):
    server.put("/registry/apps/beta/docker-compose.yaml", "services:\n  beta:\n    image: '{{ nope( }}'\n")
    context = make_context(server)
    with pytest.raises(ContextException) as info:
        context.get_spec("beta")
    assert "registry/apps/beta/docker-compose.yaml" in str(info.value) and "beta" in str(info.value)
    server.put("/registry/apps/beta/docker-compose.yaml", "- not\n- a mapping\n")
    with pytest.raises(ContextException, match="not a mapping"):
        context.get_spec("beta")


def test_fetch_timeout_is_a_clear_error(server):
    # The answer would come after 6 s; the 0.3 s timeout ends the fetch long before
    # (a margin of seconds, for a busy machine).
    server.delays["/registry/apps/alpha/docker-compose.yaml"] = 6.0
    context = make_context(server)
    context.http_session.timeout = 0.3
    started = time.monotonic()
    with pytest.raises(ContextException, match="cannot fetch .*alpha/docker-compose.yaml"):
        context.get_spec("alpha")
    assert time.monotonic() - started < 4.5


def test_server_error_names_url_and_status_and_stale_copy_is_used(server, caplog):
    context = make_context(server, max_age=0)
    path = "/registry/apps/alpha/docker-compose.yaml"
    server.errors["/registry/apps/beta/docker-compose.yaml"] = 500
    with pytest.raises(ContextException, match="HTTP status 500"):
        context.get_spec("beta")
    context.get_spec("alpha")
    server.errors[path] = 503
    with caplog.at_level("WARNING", logger="tycho.context"):
        assert context.get_spec("alpha")["services"]["alpha"]["image"] == "reg.example.org/alpha:2024.1"
    assert "using the cached copy" in caplog.text and "503" in caplog.text


def test_settings_error_status_gives_empty_settings(server, caplog):
    server.errors["/registry/apps/alpha/.env"] = 403
    context = make_context(server)
    with caplog.at_level("WARNING", logger="tycho.context"):
        assert context.get_settings("alpha") == ""
    assert "403" in caplog.text


def test_only_http_urls(server):
    cache = RegistryHttpCache()
    with pytest.raises(ContextException, match="only http and https"):
        cache.get("file:///etc/passwd")


def test_parallel_fetches_release_the_gil(server):
    """Four threads fetch four slow specs at once: with the GIL released during I/O
    they overlap, and the main thread keeps running Python meanwhile."""
    for name in ("p1", "p2", "p3", "p4"):
        server.put(f"/registry/apps/{name}/docker-compose.yaml", ALPHA_SPEC.replace("alpha", name))
        server.delays[f"/registry/apps/{name}/docker-compose.yaml"] = 1.5
    context = make_context(server)
    for name in ("p1", "p2", "p3", "p4"):
        context.apps[name] = {"spec": server.base + f"registry/apps/{name}/docker-compose.yaml"}
    results = {}

    def fetch(name):
        results[name] = context.get_spec(name)["services"][name]["image"]

    threads = [threading.Thread(target=fetch, args=(n,)) for n in ("p1", "p2", "p3", "p4")]
    started = time.monotonic()
    for t in threads:
        t.start()
    ticks = 0
    while any(t.is_alive() for t in threads):
        ticks += 1
        time.sleep(0.01)
    elapsed = time.monotonic() - started
    assert results == {n: f"reg.example.org/{n}:2024.1" for n in ("p1", "p2", "p3", "p4")}
    # one after another they would take 6 s; overlapping, about 1.5 s
    assert elapsed < 4.5, f"fetches did not overlap: {elapsed:.2f}s"
    assert ticks > 10


def test_spec_with_an_undefined_variable_warns_and_renders_it_empty(caplog):
    text = "services:\n  web:\n    image: '{{ helx_registry }}/web:1'\n"
    with caplog.at_level(logging.WARNING, logger="tycho.model"):
        spec = _native.registry_render_spec("web", "https://r.example/web/docker-compose.yaml", text,
                                            {"other": "x"})
    assert spec["services"]["web"]["image"] == "/web:1"  # as the original renders it
    warned = [r.getMessage() for r in caplog.records if r.name == "tycho.model"]
    assert any("'helx_registry'" in m and "web/docker-compose.yaml" in m for m in warned), warned
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tycho.model"):
        _native.registry_render_spec("web", "https://r.example/web/docker-compose.yaml", text,
                                     {"helx_registry": "containers.example"})
    assert not [r for r in caplog.records if r.name == "tycho.model"]
