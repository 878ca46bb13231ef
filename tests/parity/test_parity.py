"""Differential tests: the original tycho-api 1.17.3 (installed from PyPI into its own
virtualenv by tests/support/orig_env.py) and ours compile the same start requests; the
objects must be equal once GUIDs are normalised and the deliberate differences listed in
COMPATIBILITY.md are applied. Each normalisation (tests/support/parity.py) and each
deliberate difference asserted below names its COMPATIBILITY.md row.
"""

from __future__ import annotations

import json
import os

import pytest
import yaml
from cases import CASES
from compile_case import UID, compile_case
from parity import (
    GUID,
    assert_same,
    containers_of,
    normalise,
    pop_token_secret,
    principal_of,
)
from run_oracle import original_objects
from tycho import _native
from tycho.exceptions import TychoException


@pytest.fixture(scope="module")
def originals():
    return {r["name"]: r for r in original_objects(CASES)}


def ours(case):
    objects = compile_case(case, identifier=GUID)
    return json.loads(json.dumps(objects).replace(GUID, "<GUID>"))


# Cases where ours deliberately differs from the original's output; each names its
# COMPATIBILITY.md row and gets its own assertion below.
REFUSED = {
    "pvc-volume-no-mount-path": "volume",  # Row 'volume without mount path': refused.
}
HOST_IP_PORTS = "ports-multiple-and-host-ip"  # Row 'ports ip:host:container'.

GOOD = [c for c in CASES if not c.get("expect_error") and c["name"] not in REFUSED and c["name"] != HOST_IP_PORTS]
BAD = [c for c in CASES if c.get("expect_error")]


def test_enough_cases():
    assert len(GOOD) >= 25


@pytest.mark.parametrize("case", GOOD, ids=[c["name"] for c in GOOD])
def test_same_objects_as_original(case, originals):
    orig = originals[case["name"]]
    assert "objects" in orig, f"the original failed: {orig.get('error')}"
    principal = principal_of(case)
    mine = pop_token_secret(ours(case), principal, owner_uid=UID)
    theirs = [o for o in orig["objects"] if o.get("kind") != "__missing_template__"]
    # Row 'NetworkPolicy template': the original's wheel lacks it; ours ships one.
    mine_cmp = [o for o in mine if o["kind"] != "NetworkPolicy" or len(theirs) == len(orig["objects"])]
    assert [o["kind"] for o in theirs] == [o["kind"] for o in mine_cmp]
    for a, b in zip(theirs, mine_cmp):
        assert_same(normalise(a, "original", principal), normalise(b, "ours"), f"{case['name']}:{a['kind']}")


def _username_labels(objects):
    """Every ``username`` label and selector value of ``objects``, by where it is, and
    the annotations of each object."""
    found = {}
    for i, obj in enumerate(objects):
        where = f"{i}:{obj['kind']}"
        found[where + ".labels"] = (obj["metadata"].get("labels") or {}).get("username")
        spec = obj.get("spec") or {}
        if obj["kind"] == "Deployment":
            found[where + ".selector"] = spec["selector"]["matchLabels"].get("username")
            found[where + ".template"] = spec["template"]["metadata"]["labels"].get("username")
    return found


# Row 'any username': a username that is a valid label value is labelled exactly as the
# original labels it.
LABELLED = [c for c in GOOD if isinstance(json.loads(c["request"]["principal"]).get("username"), str)]


@pytest.mark.parametrize("case", LABELLED, ids=[c["name"] for c in LABELLED])
def test_valid_usernames_are_labelled_byte_for_byte_as_the_original(case, originals):
    username = json.loads(case["request"]["principal"])["username"]
    assert _native.username_label(username) == username
    theirs = [o for o in originals[case["name"]]["objects"] if o.get("kind") != "__missing_template__"]
    mine = [o for o in compile_case(case, identifier=GUID) if o["kind"] != "Secret"]
    mine = [o for o in mine if o["kind"] != "NetworkPolicy" or any(t["kind"] == "NetworkPolicy" for t in theirs)]
    # Row 'values are strings': the original pastes the name bare, so "12345" becomes an
    # int in its template labels (which the API server refuses); ours is the string.
    expected = {k: v if v is None or isinstance(v, str) else str(v) for k, v in _username_labels(theirs).items()}
    assert expected and set(expected.values()) <= {username, None}, expected
    assert _username_labels(mine) == expected
    for obj in mine:
        assert "tycho.renci.org/username" not in (obj["metadata"].get("annotations") or {})
        if obj["kind"] == "Deployment":
            assert "annotations" not in obj["spec"]["template"]["metadata"]


def test_the_edge_username_case_is_there():
    names = {json.loads(c["request"]["principal"])["username"] for c in LABELLED}
    assert any(len(n) == 63 and "." in n and "_" in n and n != n.lower() for n in names), names


def _case(name):
    return next(c for c in CASES if c["name"] == name)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_where_original_emitted_broken_objects(name):
    with pytest.raises(TychoException) as err:
        ours(_case(name))
    assert REFUSED[name] in str(err.value)


def test_host_ip_ports_use_the_container_port(originals):
    case = _case(HOST_IP_PORTS)
    orig = originals[HOST_IP_PORTS]["objects"]
    mine = ours(case)
    svc = next(o for o in mine if o["kind"] == "Service")
    their_svc = next(o for o in orig if o["kind"] == "Service")
    assert [p["port"] for p in svc["spec"]["ports"]] == [80, 443, 9000]
    # The original took the host port of "127.0.0.1:8080:80".
    assert [p["port"] for p in their_svc["spec"]["ports"]] == [8080, 443, 9000]
    rest_mine = normalise(next(o for o in mine if o["kind"] == "Deployment"), "ours")
    rest_orig = normalise(next(o for o in orig if o["kind"] == "Deployment"), "original", principal_of(case))
    assert_same(rest_orig, rest_mine, "deployment")


# The original's own templates (from the PyPI wheel in its virtualenv), rendered by our
# engine with our model, must give the original's objects: Jinja2 compatibility of the
# context (system.*, container.*, loop.index, |length, .items(), now(), None/True
# comparisons) and of value printing. Cases whose model values differ by a COMPATIBILITY
# row are left out: extra_container_env, env values with '=', ip:host:container ports.
JINJA_SKIP = {"principal-extra-container-env", HOST_IP_PORTS}


def original_template_dir():
    import orig_env

    py = orig_env.ensure_original_venv()
    import subprocess

    out = subprocess.run(
        [py, "-c", "import os, importlib.util as u; print(os.path.dirname(u.find_spec('tycho').origin))"],
        capture_output=True, text=True, check=True,
    )
    return os.path.join(out.stdout.strip(), "template")


@pytest.mark.parametrize("case", [c for c in GOOD if c["name"] not in JINJA_SKIP], ids=lambda c: c["name"])
def test_original_templates_render_the_same_with_our_engine(case, originals):
    config = yaml.safe_load(_native.DEFAULT_CONFIG)
    config["tycho"]["templates"]["paths"] = [original_template_dir()]
    mine = json.loads(json.dumps(compile_case(case, identifier=GUID, config=config)).replace(GUID, "<GUID>"))
    # The token Secret is built by the core, not by a template: it comes with any
    # templates (row 'ACCESS_TOKEN by Secret'); the original's pod.yaml ignores it.
    mine = [o for o in mine if o["kind"] != "Secret"]
    theirs = [o for o in originals[case["name"]]["objects"] if o.get("kind") != "__missing_template__"]
    # The original's wheel has no NetworkPolicy template; ours falls back to the built-in
    # one (row 'NetworkPolicy template').
    if len(theirs) < len(originals[case["name"]]["objects"]):
        mine = [o for o in mine if o["kind"] != "NetworkPolicy"]
    assert [o["kind"] for o in theirs] == [o["kind"] for o in mine]
    for a, b in zip(theirs, mine):
        assert_same(normalise(a, "original"), normalise(b, "original"), f"{case['name']}:{a['kind']}")


def test_principal_env_differences_are_real(originals):
    """The rows above are not vacuous: 1.17.3 has no ACCESS_TOKEN, writes the principal's
    tokens literally and a None field as "None"; ours has ACCESS_TOKEN by reference,
    no token literal, no "None", and the extra_container_env entries right after it."""
    case = _case("principal-extra-container-env")
    (theirs,) = [o for o in originals[case["name"]]["objects"] if o["kind"] == "Deployment"]
    (mine,) = [o for o in ours(case) if o["kind"] == "Deployment"]
    their_env = containers_of(theirs)[0]["env"]
    my_env = containers_of(mine)[0]["env"]
    assert "ACCESS_TOKEN" not in [e["name"] for e in their_env]
    assert any(e["name"] == "access_token" and str(e.get("value")) == "1234567890" for e in their_env)
    names = [e["name"] for e in my_env]
    at = names.index("ACCESS_TOKEN")
    assert names[at - 1] == "USER" and names[at + 1:at + 3] == ["FOO", "N"]
    assert "1234567890" not in json.dumps(mine)
    none_case = _case("principal-host-null-numeric-username")
    (theirs,) = [o for o in originals[none_case["name"]]["objects"] if o["kind"] == "Deployment"]
    (mine,) = [o for o in ours(none_case) if o["kind"] == "Deployment"]
    assert {"name": "host", "value": "None"} in containers_of(theirs)[0]["env"]
    assert "host" not in [e["name"] for e in containers_of(mine)[0]["env"]]
