"""Hostile values through every public Python entry point: requests nested thousands of
levels deep and mappings with keys of odd types (tuples, frozensets, bytes, None, floats,
objects: what a fuzzer makes) end in a ``tycho.exceptions`` error, or are accepted; never
RecursionError, a TypeError from ``json``, or a crash. The Python-side walks (``to_plain``,
``to_dict``, the request builders of ``TychoContext.start`` and of the REST client) are
bounded at depth 128 as the native core is.

Entry points: ``Tycho().parse`` + ``render``, ``System.parse`` + ``render``,
``TychoClient.start`` (in-process, on the kube emulator), ``TychoContext.start`` (on the
emulator, its registry served from 127.0.0.1), and the REST body (``TychoClient`` with
``REST_API=true`` against a real ``tycho api``)."""

from __future__ import annotations

import copy
import json

import pytest
from api_server import Server
from cluster import cluster_fixture  # noqa: F401 - fixture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from start_requests import base_request
from static_site import serve
from tycho.client import TychoClient
from tycho.config import Config
from tycho.context import Principal, TychoContext
from tycho.core import Tycho
from tycho.exceptions import TychoException
from tycho.model import System
from tycho.tycho_utils import MAX_DEPTH, to_plain

# ------------------------------------------------------------------ values


class Opaque:
    """An object a fuzzer might put anywhere: no to_dict, a public attribute."""

    def __init__(self, x=1):
        self.x = x


def deep(depth: int, shape: str = "dict", leaf=1):
    """A value nested ``depth`` levels (built without recursion)."""
    value = leaf
    for i in range(depth):
        kind = shape if shape != "mixed" else ("dict" if i % 2 else "list")
        value = {"k": value} if kind == "dict" else [value]
    return value


odd_key = st.one_of(
    st.tuples(st.integers(0, 3), st.text(max_size=3)),
    st.frozensets(st.integers(0, 3), max_size=2),
    st.binary(max_size=4),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-5, 5),
    st.booleans(),
    st.builds(Opaque),
)
odd_mapping = st.dictionaries(odd_key, st.one_of(st.text(max_size=5), st.integers(0, 9)), min_size=1, max_size=3)
deep_value = st.builds(deep, st.integers(MAX_DEPTH - 2, 3000), st.sampled_from(["dict", "list", "mixed"]))
hostile = st.one_of(odd_mapping, deep_value, st.dictionaries(st.text(max_size=3), odd_mapping, max_size=2))

#: Where in a start request the hostile value goes.
PLACES = ("env", "env.X", "services", "services.nginx", "system.x-extra", "system.services.nginx.x-extra",
          "system.services.nginx.environment", "system.services.nginx.deploy", "principal", "system")


def place(request: dict, where: str, value) -> dict:
    request = copy.deepcopy(request)
    if where == "principal":
        request["principal"] = {"username": "jdoe", "host": "h", "extra_container_env": value}
        return request
    parts = where.split(".")
    target = request
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value
    return request


FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def clean(call):
    """Run ``call``; a TychoException is a clean refusal, anything else fails the test."""
    try:
        return call()
    except TychoException as e:
        assert len(str(e)) < 2000, str(e)[:300]
        return e


def parse_and_render(request):
    system = Tycho().parse(request)
    return list(system.render("pod.yaml"))


# ------------------------------------------------------------------ the walks themselves


@pytest.mark.parametrize("shape", ["dict", "list", "mixed"])
def test_to_plain_refuses_a_deep_value_naming_the_field(shape):
    with pytest.raises(TychoException) as e:
        to_plain({"top": deep(5000, shape)}, what="request")
    message = str(e.value)
    assert message.startswith("request field 'top.") and f"nested deeper than {MAX_DEPTH}" in message
    assert e.value.field is not None and e.value.field.startswith("top.")


def test_to_plain_keeps_its_conversions_below_the_bound():
    cyclic: dict = {"a": 1}
    cyclic["self"] = cyclic
    value = {(1, "x"): deep(MAX_DEPTH - 5), 3: Opaque(), None: {1.5, 2.5}, "c": cyclic}
    plain = to_plain(value)
    assert plain["(1, 'x')"] == deep(MAX_DEPTH - 5)
    assert plain[3] == {"x": 1} and sorted(plain[None]) == [1.5, 2.5]
    assert plain["c"]["a"] == 1 and isinstance(plain["c"]["self"], str)


# ------------------------------------------------------------------ the two reports


def test_deep_request_through_tycho_parse_and_render_is_a_tycho_error():
    request = base_request(env={"X": deep(5000)})
    error = clean(lambda: parse_and_render(request))
    assert isinstance(error, TychoException) and "nested deeper than 128" in str(error)


def test_tuple_key_through_tycho_parse_is_accepted_or_named():
    request = place(base_request(), "principal", {("a", 1): "v"})
    result = clean(lambda: parse_and_render(request))
    assert not isinstance(result, TychoException), result
    env = {e["name"]: e.get("value") for e in result[0]["spec"]["containers"][0]["env"]}
    assert env["('a', 1)"] == "v"


# ------------------------------------------------------------------ property-based, per entry point


@FUZZ
@given(value=hostile, where=st.sampled_from(PLACES))
def test_fuzz_tycho_parse_and_render(value, where):
    clean(lambda: parse_and_render(place(base_request(), where, value)))


@FUZZ
@given(value=hostile, where=st.sampled_from(PLACES))
def test_fuzz_system_parse_and_render(value, where):
    request = place(base_request(), where, value)
    config = Config("conf/tycho.yaml")

    def go():
        system = System.parse(config, request.get("name"), request.get("principal"), request.get("system"),
                              request.get("serviceaccount"), request.get("env"), request.get("services"))
        list(system.render("pod.yaml"))
        system.to_dict()
        # a context value of its own, as callers pass one
        list(system.render("pod.yaml", context={"extra": value}))

    clean(go)


@FUZZ
@given(value=hostile, where=st.sampled_from(PLACES))
def test_fuzz_tycho_client_start_in_process(value, where, cluster):
    clean(lambda: TychoClient().start(place(base_request(), where, value)))
    cluster.backend.reset(store_only=True)


REGISTRY = """
api: Tycho
version: 0.1.0
repositories:
  local:
    url: apps
contexts:
  top:
    apps:
      nginx:
        name: Nginx
        services:
          nginx: 80
"""
SPEC = """
version: "3.0"
services:
  nginx:
    image: nginx:1.27
    ports: ["80"]
"""


@pytest.fixture
def registry_url(tmp_path):
    (tmp_path / "apps" / "nginx").mkdir(parents=True)
    (tmp_path / "app-registry.yaml").write_text(REGISTRY)
    (tmp_path / "app-defaults.yaml").write_text("{}\n")
    (tmp_path / "apps" / "nginx" / "docker-compose.yaml").write_text(SPEC)
    with serve(tmp_path) as url:
        yield url


@FUZZ
@given(value=hostile, which=st.sampled_from(["resource_request", "extra_container_env", "deploy"]))
def test_fuzz_tycho_context_start(value, which, cluster, registry_url):
    context = TychoContext(product="top", tycho_config_url=registry_url)
    resource_request = {"deploy": {"resources": {"limits": value}}} if which == "deploy" else None
    if which == "resource_request":
        resource_request = value
    extra = value if which == "extra_container_env" else {}
    clean(lambda: context.start(Principal("jdoe"), "nginx", resource_request, "h.example.org", extra))
    cluster.backend.reset(store_only=True)


@pytest.fixture
def rest_server(cluster, monkeypatch, tmp_path):
    server = Server(tmp_path, cluster.kubeconfig).wait_listening()
    monkeypatch.setenv("REST_API", "true")
    yield server
    server.stop()


@FUZZ
@given(value=hostile, where=st.sampled_from(PLACES))
def test_fuzz_rest_body_through_the_client(value, where, rest_server, cluster):
    client = TychoClient(url=rest_server.url)
    clean(lambda: client.start(place(base_request(), where, value)))
    cluster.backend.reset(store_only=True)


def test_rest_body_deep_and_odd_keys_are_named(rest_server):
    client = TychoClient(url=rest_server.url)
    with pytest.raises(TychoException) as e:
        client.start(base_request(env={"X": deep(3000)}))
    assert "request field 'env.X" in str(e.value)
    # JSON keys are strings: a tuple key arrives as its str() (json.dumps would refuse it)
    body = json.loads(json.dumps(to_plain({("a", 1): "v"})))
    assert body == {"('a', 1)": "v"}
