"""Hostile input to the compiler, the YAML reader and the registry spec renderer (issue 9):
every attack ends in a tycho.exceptions subclass, fast and in bounded memory, never in a
crash of the interpreter."""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys
import textwrap

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from start_requests import base_request
from tycho import _native
from tycho.core import Tycho
from tycho.exceptions import RequestKeyError, TychoException

# our limit, or saphyr-parser's own limit on flow collections
DEEP = "deeper than 128|recursion limit"


def deep_list(n):
    v = 1
    for _ in range(n):
        v = [v]
    return v


def run_isolated(code, timeout=60):
    """Runs `code` in a fresh interpreter; returns (exit code, stdout, stderr, peak RSS MiB)."""
    prog = textwrap.dedent(code) + textwrap.dedent(
        """
        import sys
        # VmHWM is this program's own peak: getrusage's ru_maxrss also keeps the peak of
        # the process before exec (here: pytest, which forked us).
        with open("/proc/self/status") as status:
            hwm = next(line for line in status if line.startswith("VmHWM:"))
        print("PEAK_MIB", int(hwm.split()[1]) / 1024, file=sys.stderr)
        """
    )
    p = subprocess.run([sys.executable, "-"], input=prog, capture_output=True, text=True, timeout=timeout)
    peak = None
    for line in p.stderr.splitlines():
        if line.startswith("PEAK_MIB"):
            peak = float(line.split()[1])
    return p.returncode, p.stdout, p.stderr, peak


# ------------------------------------------------------------------ depth


def test_deep_yaml_is_an_error_not_a_crash():
    with pytest.raises(TychoException, match=DEEP):
        _native.yaml_load_all("- " * 100000 + "1")
    with pytest.raises(TychoException, match=DEEP):
        _native.yaml_load_all("[" * 100000 + "]" * 100000)
    # 100 levels are fine
    assert _native.yaml_load_all("[" * 100 + "]" * 100)


@pytest.mark.parametrize(
    "call",
    [
        lambda d: _native.compile_request(base_request(system={"services": {"nginx": {"image": "n", "x": d}}})),
        lambda d: _native.yaml_dump_all([d]),
        lambda d: _native.render_string("{{ a }}", {"a": d}),
        lambda d: _native.template_literal(d),
    ],
    ids=["compile_request", "yaml_dump_all", "render_string", "template_literal"],
)
def test_deep_python_values_are_refused(call):
    with pytest.raises(TychoException, match=DEEP):
        call(deep_list(11000))


def test_self_containing_value_is_refused():
    a = []
    a.append(a)
    with pytest.raises(TychoException, match=DEEP):
        _native.yaml_dump_all([a])


def test_deep_spec_is_refused_by_the_spec_renderer():
    text = "services:\n  a:\n    x: " + "[" * 50000 + "]" * 50000 + "\n"
    with pytest.raises(TychoException, match=DEEP):
        _native.registry_render_spec("a", "http://h/a/docker-compose.yaml", text, {})


def test_deep_spec_on_a_small_thread_stack():
    """aget_spec's work runs on a worker thread: deep input is refused there too."""
    code = """
    import threading
    from tycho import _native
    from tycho.exceptions import TychoException
    threading.stack_size(512 * 1024)
    out = []
    def work():
        try:
            _native.registry_render_spec("a", "u", "x: " + "[" * 200000 + "]" * 200000, {})
        except TychoException as e:
            out.append(str(e))
    t = threading.Thread(target=work)
    t.start(); t.join()
    print("refused" if out and ("deeper" in out[0] or "recursion limit" in out[0]) else "not refused")
    """
    rc, out, err, _ = run_isolated(code)
    assert rc == 0, err
    assert "refused" in out and "not refused" not in out


def test_cli_render_of_a_deep_file_exits_1_with_one_line(tmp_path):
    f = tmp_path / "docker-compose.yaml"
    f.write_text("services:\n  web:\n    image: " + "[" * 100000 + "]" * 100000 + "\n")
    p = subprocess.run(
        [sys.executable, "-m", "tycho", "render", "-f", str(f)], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 1, (p.returncode, p.stderr[-500:])
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and re.search(DEEP, lines[0]), p.stderr[-500:]


# ------------------------------------------------------------------ sizes (issue 24)


def tycho_cli(*args, stdin=None, env=None, timeout=120):
    import os

    full_env = dict(os.environ)
    full_env.pop("TYCHO_MAX_INPUT_SIZE", None)
    full_env.pop("TYCHO_MAX_SERVICES", None)
    full_env.pop("TYCHO_MAX_PORTS", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "tycho", *args], input=stdin, capture_output=True,
                          timeout=timeout, env=full_env)


def one_error_line(p):
    lines = [line for line in p.stderr.decode(errors="replace").splitlines() if line.strip()]
    assert p.returncode == 1 and len(lines) == 1 and lines[0].startswith("tycho: error: "), (p.returncode, lines[-5:])
    return lines[0]


def services_yaml(n, ports=1):
    out = ["services:"]
    for i in range(n):
        out.append(f"  s{i}:\n    image: nginx:1.27\n    ports: [{', '.join(str(80 + p) for p in range(ports))}]")
    return "\n".join(out) + "\n"


def test_cli_reads_standard_input_up_to_its_limit():
    big = ("# " + "x" * 1000 + "\n") * (17 * 1024)  # 17 MiB of comments
    line = one_error_line(tycho_cli("render", "-f", "-", stdin=big.encode()))
    assert "the standard input is larger than 16.0 MiB" in line and "--max-input-size" in line, line
    # Raised, the same input is read (and its compose document found empty).
    line = one_error_line(tycho_cli("--max-input-size", "32Mi", "render", "-f", "-", stdin=big.encode()))
    assert "larger than" not in line, line
    line = one_error_line(tycho_cli("render", "-f", "-", stdin=big.encode(), env={"TYCHO_MAX_INPUT_SIZE": "1G"}))
    assert "larger than" not in line, line
    p = tycho_cli("--max-input-size", "lots", "render", "-f", "-", stdin=b"")
    assert p.returncode == 2 and b"--max-input-size must be a size" in p.stderr, p.stderr


def test_cli_refuses_a_huge_compose_file_without_reading_it(tmp_path):
    # 200 MB of services aborted the process before (a failed allocation, rc 134). A
    # sparse file: its size is what the command line looks at first.
    f = tmp_path / "docker-compose.yaml"
    with open(f, "wb") as out:
        out.truncate(200 * 1000 * 1000)
    line = one_error_line(tycho_cli("render", "-f", str(f)))
    assert f"{f} is larger than 16.0 MiB; raise the limit with --max-input-size" in line, line
    # A settings file is read through the same limit.
    (tmp_path / "small.yaml").write_text(services_yaml(1))
    env_file = tmp_path / "big.env"
    env_file.write_text("A=" + "x" * (2 * 1024 * 1024) + "\n")
    line = one_error_line(tycho_cli("--max-input-size", "1Mi", "render", "-f", str(tmp_path / "small.yaml"),
                                    "--env-file", str(env_file)))
    assert f"settings {env_file} is larger than 1.0 MiB" in line, line


def test_cli_names_the_service_and_port_caps(tmp_path):
    f = tmp_path / "docker-compose.yaml"
    f.write_text(services_yaml(65))
    line = one_error_line(tycho_cli("render", "-f", str(f)))
    assert "65 services, more than the 64 allowed (TYCHO_MAX_SERVICES)" in line, line
    p = tycho_cli("render", "-f", str(f), "-o", "name", env={"TYCHO_MAX_SERVICES": "65"})
    assert p.returncode == 0, p.stderr[-500:]
    f.write_text(services_yaml(1, ports=65))
    line = one_error_line(tycho_cli("render", "-f", str(f)))
    assert "service 's0': 65 ports (ports and expose), more than the 64 allowed (TYCHO_MAX_PORTS)" in line, line


def test_python_api_names_the_caps(monkeypatch):
    services = {f"s{i}": {"image": "nginx:1.27"} for i in range(65)}
    with pytest.raises(TychoException, match=r"65 services, more than the 64 allowed \(TYCHO_MAX_SERVICES\)"):
        _native.compile_request(base_request(system={"services": services}, services={}))
    ports = {"s0": {"image": "nginx:1.27", "ports": [str(1000 + i) for i in range(40)],
                    "expose": [str(2000 + i) for i in range(25)]}}
    with pytest.raises(TychoException, match=r"65 ports \(ports and expose\), more than the 64 allowed"):
        _native.compile_request(base_request(system={"services": ports}, services={}))
    # The caps are read at each compile.
    monkeypatch.setenv("TYCHO_MAX_SERVICES", "100")
    monkeypatch.setenv("TYCHO_MAX_PORTS", "65")
    _native.compile_request(base_request(system={"services": services}, services={}))
    _native.compile_request(base_request(system={"services": ports}, services={}))


def test_settings_copied_into_many_services_fail_before_the_copies():
    # 1 MiB of settings go into the environment of each of 16 containers: 16 MiB of
    # environment, more than pod.yaml may write; refused before it is built.
    code = f"""
    import time
    from tycho import _native
    from tycho.exceptions import TychoException
    req = {base_request(env={"BIG": "x" * (1024 * 1024)},
                        system={"services": {f"s{i}": {"image": "nginx:1.27"} for i in range(16)}},
                        services={})!r}
    t0 = time.monotonic()
    try:
        _native.compile_request(req)
        print("NO ERROR")
    except TychoException as e:
        print("REFUSED", str(e)[:400])
    print("SECONDS", time.monotonic() - t0)
    """
    rc, out, err, peak = run_isolated(code)
    assert rc == 0, err[-2000:]
    assert "REFUSED" in out and "go into the environment of each of the 16 services" in out, out
    assert "TYCHO_TEMPLATE_OUTPUT_LIMIT" in out, out
    assert peak is not None and peak < 100, (peak, out)


# ------------------------------------------------------------------ aliases


def laughs(levels=9, width=9):
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_fails_fast():
    text = laughs()
    assert len(text) < 700
    with pytest.raises(TychoException, match="aliases expand"):
        _native.yaml_load_all(text)
    spec = "services:\n  a:\n    image: x\n" + textwrap.indent(laughs(), "    ")
    with pytest.raises(TychoException, match="aliases expand"):
        _native.registry_render_spec("a", "http://h/a/docker-compose.yaml", spec, {})


def test_ordinary_aliases_still_work():
    docs = _native.yaml_load_all("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\nl: [*b, *b]\n")
    assert docs[0]["m"] == {"y": 3, "x": 1}
    assert docs[0]["l"] == [{"x": 1, "y": 2}] * 2


@pytest.mark.parametrize(
    "attack",
    [
        "_native.yaml_load_all(LAUGHS)",
        "_native.registry_render_spec('a', 'u', 'services:\\n  a:\\n' + LAUGHS_INDENTED, {})",
        "_native.render_string(\"{{ 'x' * 100000000 }}\", {})",
        "_native.render_string(\"{% set s = 'x' %}\" + '{% set s = s ~ s %}' * 60, {})",
        "_native.render_string(\"{{ ('x' * 20000)|replace('x', 'y' * 20000) }}\", {})",
        "_native.render_string(\"{{ ('x' * 1000)|indent(100000000) }}\", {})",
        "_native.render_string(\"{{ 'a %100000000s b'|format(1) }}\", {})",
        "_native.render_string(\"{{ [1]|batch(100000000, 0)|list }}\", {})",
        "_native.render_string(\"{% set s = '&' * 100000 %}{{ s|e|e|e|e|e|e|e|e|e }}\", {})",
        "_native.render_string('{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}', {})",
        "_native.render_string('{% for i in range(100000) %}' + 'x' * 1000 + '{% endfor %}', {})",
        "_native.compile_request(REQ_MANY_BOMBS)",
    ],
)
def test_any_small_input_fails_in_bounded_time_and_memory(attack):
    code = f"""
    import json, time
    from tycho import _native
    from tycho.exceptions import TychoException
    LAUGHS = {laughs()!r}
    LAUGHS_INDENTED = {textwrap.indent(laughs(), '    ')!r}
    REQ_MANY_BOMBS = {base_request(env={f"s{i}": "{% for i in range(100000) %}{% endfor %}" for i in range(2000)},
                                   system={"services": {"nginx": {"image": "{{ s0 }}",
                                           "environment": [f"E{i}={{{{ s{i} }}}}" for i in range(2000)]}}})!r}
    t0 = time.monotonic()
    try:
        {attack}
        print("NO ERROR")
    except TychoException as e:
        print("REFUSED", str(e)[:300])
    print("SECONDS", time.monotonic() - t0)
    """
    rc, out, err, peak = run_isolated(code)
    assert rc == 0, err[-2000:]
    assert "REFUSED" in out, out
    seconds = float(out.split("SECONDS")[1])
    # generous bounds for a busy 2-core machine; unbounded these take GBs or never end
    assert seconds < 10, out
    assert peak is not None and peak < 100, (peak, out)


# Values a template nests as deep as its fuel allows, and a flat text chaining nesting
# filters: dropping or printing them recurses. The request stays on its thread's stack
# only for the built-in templates and short texts without statements (src/limits,
# STACK_BASE_RED_ZONE); these must end in an answer or a clean error, never a crash.
DEEP_TEMPLATES = [
    "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% for j in range(100000) %}"
    "{% set ns.x = [ns.x] %}{% endfor %}{% endfor %}{{ ns.x|length }}",
    "{% set ns = namespace(x={}) %}{% for i in range(100000) %}{% for j in range(100000) %}"
    "{% set ns.x = {'a': ns.x} %}{% endfor %}{% endfor %}{{ ns.x }}",
    "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}",
    "{{ [1]" + "|batch(1)" * 450 + " }}",
    "{{ [1]" + "|batch(1)" * 5000 + " }}",
]


@pytest.mark.parametrize("stack_kib", [0, 512])
@pytest.mark.parametrize("template", DEEP_TEMPLATES, ids=["loop-list", "loop-dict", "loop-print", "flat-chain", "long-chain"])
def test_deep_values_built_by_templates_end_cleanly(template, stack_kib):
    code = f"""
    import threading
    from tycho import _native
    from tycho.exceptions import TychoException
    out = []
    def run():
        try:
            out.append("RENDERED %d" % len(_native.render_string({template!r}, {{}})))
        except TychoException as e:
            out.append("REFUSED " + str(e)[:200])
    if {stack_kib}:
        threading.stack_size({stack_kib} * 1024)
        t = threading.Thread(target=run)
        t.start()
        t.join()
    else:
        run()
    print(out[0])
    """
    rc, out, err, _ = run_isolated(code, timeout=120)
    assert rc == 0, err[-2000:]
    assert out.startswith(("RENDERED", "REFUSED")), out


def test_budget_errors_name_the_template_and_the_field():
    req = base_request(env={"big": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"})
    req["system"]["services"]["nginx"]["environment"] = ["A={{ big }}", "B={{ 'x' * 100000000 }}"]
    with pytest.raises(TychoException) as e:
        _native.compile_request(req)
    msg = str(e.value)
    assert "services.nginx.environment.1" in msg, msg
    assert "TYCHO_TEMPLATE_MEMORY_LIMIT" in msg, msg
    assert len(msg) < 600


def test_checked_operators_keep_jinja_semantics():
    ctx = {"x": [1, 2], "a": "p", "b": "q", "n": 3}
    cases = {
        "{{ 1+2 }}": "3",
        "{{ 'a' ~ 3 }}": "a3",
        "{{ [1]+[2] }}": "[1, 2]",
        "{{ 2*3 }}": "6",
        "{{ 'ab'*2 }}": "abab",
        "{{ (1+2)*3 }}": "9",
        "{{ -2*3 }}": "-6",
        "{{ x|length * 2 }}": "4",
        "{{ (a ~ b).upper() }}": "PQ",
        "{{ a ~ b ~ (n + 1) }}": "pq4",
        "{{ 1.5 * 2 }}": "3.0",
        "{{ '%s-%s'|format(a, b) }}": "p-q",
        "{{ x|join(',') }}": "1,2",
        "{{ 'a-b'.replace('-', '+') }}": "a+b",
        "{{ [1]|tojson(indent=2) }}": "[\n  1\n]",
        "{% set s = 'ab' %}{{ s ~ s * 2 }}": "ababab",
    }
    for src, want in cases.items():
        assert _native.render_string(src, ctx) == want, src


# ------------------------------------------------------------------ values are data


def test_resource_request_values_stay_literal():
    literal = _native.template_literal({"deploy": {"resources": {"limits": {"memory": "{{ 7*7 }}G"}}}})
    req = base_request()
    req["system"]["services"]["nginx"].update(literal)
    with pytest.raises(TychoException) as e:
        _native.compile_request(req)
    assert "{{ 7*7 }}G" in str(e.value) and "49G" not in str(e.value)
    # values without template syntax are untouched
    assert _native.template_literal({"memory": "2G", "cpus": 1.5, "x": "a{b}"}) == {
        "memory": "2G",
        "cpus": 1.5,
        "x": "a{b}",
    }


def test_tycho_context_start_merges_resource_request_as_data():
    from tycho.context import TychoContext

    captured = {}

    class Probe(TychoContext):
        def __init__(self):
            self.apps = {"nginx": {"spec": "http://h/nginx/docker-compose.yaml", "services": {"nginx": 80}}}
            self.registry = {}
            self.product = "common"

        def get_spec(self, app_id):
            return {"services": {"nginx": {"image": "nginx:1", "ports": ["80"]}}}

        def get_settings(self, app_id):
            return ""

        def _start(self, request):
            captured.update(request)
            raise TychoException("stop here")

    class Client:
        @staticmethod
        def parse_env(text):
            return {}

    class Principal:
        username, access_token, refresh_token = "jdoe", None, None

    ctx = Probe()
    ctx.client = Client()
    with pytest.raises(TychoException, match="stop here"):
        ctx.start(Principal(), "nginx", {"deploy": {"resources": {"limits": {"memory": "{{ 7*7 }}G"}}}}, "h")
    limits = captured["system"]["services"]["nginx"]["deploy"]["resources"]["limits"]
    rendered = _native.render_string(limits["memory"], {})
    assert rendered == "{{ 7*7 }}G"


# ------------------------------------------------------------------ named errors


def test_missing_field_is_a_tycho_exception_and_a_key_error():
    with pytest.raises(RequestKeyError) as e:
        Tycho().parse({})
    assert isinstance(e.value, KeyError) and isinstance(e.value, TychoException)
    assert "name" in str(e.value)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 10**400])
def test_non_finite_and_out_of_range_numbers_are_refused_with_the_field(bad):
    req = base_request()
    req["system"]["services"]["nginx"]["deploy"] = {"resources": {"limits": {"cpus": bad, "memory": "1G"}}}
    with pytest.raises(TychoException) as e:
        _native.compile_request(req)
    assert "system.services.nginx.deploy.resources.limits.cpus" in str(e.value), str(e.value)


def test_huge_values_are_echoed_cut():
    req = base_request(principal=json.dumps({"username": "x" * 10_000_000}))
    with pytest.raises(TychoException) as e:
        _native.compile_request(req)
    assert len(str(e.value)) < 1000


@pytest.mark.parametrize("char", ["\x7f", "\ufffe", "\x85", "\u2028", "\x00", "\x1b", "\ufeff"])
def test_annotation_text_reads_back_exactly(char):
    target = f"/a{char}b/"
    req = base_request()
    req["system"]["services"]["nginx"]["proxy_rewrite"] = {"enabled": True, "target": target}
    objects = _native.compile_request(req, ambassador=True)
    service = next(o for o in objects if o["kind"] == "Service")
    mapping = yaml.safe_load(service["metadata"]["annotations"]["getambassador.io/config"])
    assert mapping["rewrite"] == target
    # and the whole object written by our YAML writer reads back the same
    assert yaml.safe_load(_native.yaml_dump_all([service]).split("---\n", 1)[1]) == service


# ------------------------------------------------------------------ property-based


def _is_clean(call):
    try:
        call()
    except TychoException:
        pass


json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=20)
)
json_tree = st.recursive(
    json_leaf,
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=8), c, max_size=4)),
    max_leaves=30,
)
template_text = st.lists(
    st.sampled_from(["{{", "}}", "{%", "%}", "{#", "#}", "x", " ", "*", "~", "+", "'", "range(9)", "for", "in", "|"]),
    max_size=12,
).map("".join)

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(service=st.dictionaries(st.sampled_from(["image", "ports", "environment", "deploy", "command", "volumes",
                                                 "entrypoint", "securityContext", "x"]), json_tree, max_size=5),
       env=st.dictionaries(st.text(max_size=6), st.one_of(json_leaf, template_text), max_size=4))
def test_fuzz_start_requests(service, env):
    req = base_request(env=env, system={"services": {"nginx": service}})
    _is_clean(lambda: _native.compile_request(copy.deepcopy(req)))


@FUZZ
@given(doc=json_tree, text=template_text)
def test_fuzz_compose_documents_and_templates(doc, text):
    _is_clean(lambda: _native.compile_request(base_request(system=doc)))
    _is_clean(lambda: _native.render_string(text, {"x": doc}))


yaml_piece = st.sampled_from(
    ["a", ":", " ", "\n", "- ", "[", "]", "{", "}", "&x ", "*x", "<<", ",", "'", '"', "!!str ", "#", "---\n", "1e400",
     ".nan", "0x1F", "|\n", "  "]
)


@FUZZ
@given(text=st.lists(yaml_piece, max_size=40).map("".join))
def test_fuzz_registry_yaml(text):
    _is_clean(lambda: _native.yaml_load_all(text))
    _is_clean(lambda: _native.registry_render_spec("a", "http://h/a/docker-compose.yaml", text, {}))


# ------------------------------------------------------------------ deep documents over HTTP

# A registry server on 127.0.0.1 inside the isolated interpreter: a crash of the
# interpreter (stack overflow) shows as a signal exit, not as a dead pytest.
SERVE_PREFIX = """
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FILES = {}

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server API
        body = FILES.get(self.path.split("?")[0])
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

httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
BASE = f"http://127.0.0.1:{httpd.server_address[1]}/"
threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
"""

SMALL_REGISTRY = """
api: Tycho
version: 0.1.0
repositories:
  local:
    url: apps
contexts:
  top:
    apps:
      deep:
        name: Deep
        services:
          deep: 80
"""


def test_deep_registry_at_tycho_config_url_is_a_context_exception():
    # 200 KB of nested block lists as the registry's contexts
    deep = "api: Tycho\ncontexts:\n  top:\n    " + "- " * 100000 + "1\n"
    code = (
        SERVE_PREFIX
        + f"""
FILES["/registry/app-registry.yaml"] = {deep!r}
FILES["/registry/app-defaults.yaml"] = "{{}}\\n"
from tycho.context import TychoContext
from tycho.exceptions import ContextException
try:
    TychoContext(product="top", tycho_config_url=BASE + "registry")
    print("RESULT accepted")
except ContextException as e:
    print("RESULT ContextException", str(e)[:300])
except BaseException as e:
    print("RESULT other", type(e).__name__, str(e)[:300])
"""
    )
    assert len(deep) > 200_000
    rc, out, err, _ = run_isolated(code)
    assert rc == 0, (rc, err[-1000:])
    result = next(line for line in out.splitlines() if line.startswith("RESULT"))
    assert result.startswith("RESULT ContextException"), result
    assert re.search(DEEP, result), result


def test_deep_spec_through_aget_spec_is_a_clean_error():
    """aget_spec fetches and parses on a tokio worker thread (a 2 MiB stack)."""
    deep_spec = "services:\n  deep:\n    image: " + "[" * 100000 + "]" * 100000 + "\n"
    code = (
        SERVE_PREFIX
        + f"""
FILES["/registry/app-registry.yaml"] = {SMALL_REGISTRY!r}
FILES["/registry/app-defaults.yaml"] = "{{}}\\n"
FILES["/registry/apps/deep/docker-compose.yaml"] = {deep_spec!r}
import asyncio
from tycho.context import TychoContext
from tycho.exceptions import TychoException
context = TychoContext(product="top", tycho_config_url=BASE + "registry")
assert context.apps["deep"]["spec"] == BASE + "registry/apps/deep/docker-compose.yaml", context.apps["deep"]
try:
    asyncio.run(context.aget_spec("deep"))
    print("RESULT accepted")
except TychoException as e:
    print("RESULT TychoException", type(e).__name__, str(e)[:300])
except BaseException as e:
    print("RESULT other", type(e).__name__, str(e)[:300])
"""
    )
    rc, out, err, _ = run_isolated(code)
    assert rc == 0 and "PEAK_MIB" in err, (rc, err[-1000:])
    result = next(line for line in out.splitlines() if line.startswith("RESULT"))
    assert result.startswith("RESULT TychoException"), result
    assert re.search(DEEP, result), result


def test_a_process_that_used_the_asyncio_bridge_exits_cleanly():
    """The runtime's threads enter Python to run bridge jobs, resolve asyncio futures and
    log; at exit they must be out before the interpreter finalizes (src/bindings/
    lifecycle.rs). Before that gate, about 1 in 10 of these processes died at exit
    (SIGSEGV, or SIGABRT "PyGILState_Release: thread state ... must be current"), more
    under CPU contention: so they run four at a time, and one exits while a bridge job
    it abandoned is still running and the runtime's threads log."""
    code = """
import asyncio, logging, time
logging.basicConfig(level=logging.DEBUG)
from tycho import _native
async def main():
    assert await _native.aio_call(lambda: 1) == 1
    await asyncio.gather(*[_native.aio_call(time.sleep, 0.001) for _ in range(20)])
    try:
        await asyncio.wait_for(_native.aio_call(time.sleep, 0.2), 0.01)
    except asyncio.TimeoutError:
        pass
asyncio.run(main())
print("END")
"""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: run_isolated(code), range(32)))
    failed = [(rc, err[-300:]) for rc, out, err, _ in runs if rc != 0 or "END" not in out]
    assert failed == [], failed
