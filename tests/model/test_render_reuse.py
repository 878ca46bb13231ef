"""`System.render` keeps the last system's conversion while its objects are unchanged
(`tycho._native.render_model`, `PlainWalk::unchanged`): a system changed in any way
between two renders renders as a fresh copy of it does, never as it was."""

from __future__ import annotations

import copy
import json

import pytest
from tycho.config import Config
from tycho.exceptions import TychoException
from tycho.model import Container, System

COMPOSE = {
    "services": {
        "web": {
            "image": "nginx:1",
            "ports": ["8080:80"],
            "environment": ["A=1", "B=two"],
            "deploy": {"resources": {"limits": {"cpus": "1", "memory": "1G"}}},
        }
    }
}


def parse() -> System:
    principal = json.dumps({"username": "jdoe", "access_token": "t"})
    return System.parse(Config(), "app", principal, copy.deepcopy(COMPOSE), "default", {},
                        {"web": {"port": "80", "clients": []}})


def render_all(system: System) -> list:
    docs = list(system.render("pod.yaml"))
    for service in system.services.values():
        docs += system.render("service.yaml", context={"service": service})
    return docs


def fresh(system: System) -> list:
    """What a new object with the same contents renders (never taken from the cache)."""
    return render_all(copy.deepcopy(system))


def _renamed_copy(container: Container, name: str) -> Container:
    other = copy.deepcopy(container)
    other.name = name
    return other


class Renamed(Container):
    """A subclass: not converted natively, but through to_plain."""


MUTATIONS = {
    "list appended": lambda s: s.containers[0].env.append(["C", "3"]),
    "list item replaced, same length": lambda s: s.containers[0].env.__setitem__(0, ["A", "9"]),
    "nested list item replaced in place": lambda s: s.containers[0].env[1].__setitem__(1, "too"),
    "string attribute": lambda s: setattr(s, "name", "other"),
    "string attribute of a container": lambda s: setattr(s.containers[0], "image", "nginx:2"),
    "int attribute": lambda s: setattr(s, "default_run_as_user", 4242),
    "int in a dict": lambda s: s.containers[0].ports[0].__setitem__("containerPort", 8081),
    "dict value replaced, same keys": lambda s: s.security_context.__setitem__(
        next(iter(s.security_context)), 7),
    "dict key added": lambda s: s.annotations.__setitem__("team", "x"),
    "dict emptied and refilled with another key": lambda s: (s.system_env.clear(),
                                                             s.system_env.__setitem__("Z", "1")),
    "model object replaced": lambda s: s.containers[0].__setattr__(
        "limits", type(s.containers[0].limits)(cpus="3", memory="3G")),
    "attribute added": lambda s: setattr(s.containers[0], "extra", "value"),
    "attribute removed": lambda s: delattr(s.containers[0], "identity"),
    "container added": lambda s: s.containers.append(_renamed_copy(s.containers[0], "side")),
    "class changed to a subclass": lambda s: setattr(s.containers[0], "__class__", Renamed),
    "private attribute (left out either way)": lambda s: setattr(s.containers[0], "_note", "x"),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS), ids=list(MUTATIONS))
def test_a_changed_system_renders_as_changed(mutation):
    system = parse()
    before = render_all(system)
    assert render_all(system) == before  # unchanged: the kept conversion, the same objects
    MUTATIONS[mutation](system)
    after = render_all(system)
    assert after == fresh(system)
    if mutation.startswith(("list", "nested", "string", "int in", "model", "container")):
        assert after != before, "the change shows in the objects"


def test_renders_alternating_between_systems():
    a, b = parse(), parse()
    b.containers[0].image = "busybox:1"
    ra, rb = render_all(a), render_all(b)
    assert ra != rb
    for _ in range(3):
        assert render_all(a) == ra
        assert render_all(b) == rb


def test_a_refused_system_does_not_stay_cached():
    system = parse()
    good = render_all(system)
    system.containers[0].env.append(["X", float("nan")])
    with pytest.raises(TychoException, match="not a finite number"):
        system.render("pod.yaml")
    system.containers[0].env.pop()
    assert render_all(system) == good
