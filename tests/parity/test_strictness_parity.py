"""Strictness differential test: odd start requests that tycho-api 1.17.3 accepts
(tests/support/odd_cases.py) are accepted by ours too, give the same objects modulo the
COMPATIBILITY.md rows (the normalisation of tests/support/parity.py), and ours logs one
WARNING per field (logger ``tycho.model``) where it had to bend a rule or ignores a
compose key, none otherwise. The remaining rejections are the rows of COMPATIBILITY.md's strictness audit;
the ones Kubernetes or security requires are checked at the end."""

from __future__ import annotations

import json
import logging

import pytest
from cases import PROD
from compile_case import compile_case
from odd_cases import ODD_CASES, _jupyter, _odd, _req, principal
from parity import GUID, assert_same, normalise, pop_token_secret
from run_oracle import original_objects
from tycho.exceptions import TychoException


@pytest.fixture(scope="module")
def originals():
    return {r["name"]: r for r in original_objects(ODD_CASES)}


def test_enough_odd_cases():
    assert len(ODD_CASES) >= 30
    assert len({c["name"] for c in ODD_CASES}) == len(ODD_CASES)


def _ours(case):
    objects = compile_case(case, identifier=GUID)
    return json.loads(json.dumps(objects).replace(GUID, "<GUID>"))


def _principal(case):
    p = case["request"].get("principal")
    return json.loads(p) if isinstance(p, str) else dict(p or {})


@pytest.mark.parametrize("case", ODD_CASES, ids=[c["name"] for c in ODD_CASES])
def test_odd_but_accepted(case, originals, caplog):
    orig = originals[case["name"]]
    assert "objects" in orig, f"the original refused: {orig.get('error')}"
    with caplog.at_level(logging.WARNING):
        mine = _ours(case)
    # Row 'ACCESS_TOKEN by Secret': the token Secret is checked and set aside.
    who = _principal(case)
    mine = pop_token_secret(mine, who)
    warnings = [r for r in caplog.records if r.name == "tycho.model" and r.levelno == logging.WARNING]
    if case.get("warns"):
        # One WARNING per entry of `warns`, each naming its field.
        assert len(warnings) == len(case["warns"]), [r.getMessage() for r in warnings]
        for word in case["warns"]:
            assert sum(word in r.getMessage() for r in warnings) == 1, (word, [r.getMessage() for r in warnings])
    else:
        assert warnings == [], [r.getMessage() for r in warnings]
    theirs = [o for o in orig["objects"] if o.get("kind") != "__missing_template__"]
    if case.get("gpu_quirk"):
        # Row 'limits as a list' of the audit: the original's template sees no `gpus` on
        # the plain dict and adds a GPU toleration (and `nvidia.com/gpu: null`, pruned).
        spec = theirs[0]["spec"]["template"]["spec"]
        assert spec.pop("tolerations")[0]["key"] == "nvidia.com/gpu"
    # Row 'NetworkPolicy template': the original's wheel lacks it; ours ships one.
    mine_cmp = [o for o in mine if o["kind"] != "NetworkPolicy" or len(theirs) == len(orig["objects"])]
    assert [o["kind"] for o in theirs] == [o["kind"] for o in mine_cmp]
    for a, b in zip(theirs, mine_cmp):
        assert_same(normalise(a, "original", who), normalise(b, "ours"), f"{case['name']}:{a['kind']}")


def test_unknown_service_entry_with_clients_admits_them_on_its_port():
    # The original keeps the entry in system.services and then needs its NetworkPolicy
    # template (missing from its wheel); ours keeps the entry too (row 'services.X names no
    # service'): no Service for it, and our NetworkPolicy admits its clients on its port.
    case = _odd("ghost-with-clients", _req(expose={"jupyter-ds": "8888", "ghost": {"port": "1", "clients": ["10.0.0.0/8"]}}), "")
    objects = pop_token_secret(_ours(case), _principal(case))
    assert [o["kind"] for o in objects] == ["Deployment", "NetworkPolicy", "Service"]
    rules = objects[1]["spec"]["ingress"]
    assert {"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 1, "protocol": "TCP"}]} in rules
    (service,) = [o for o in objects if o["kind"] == "Service"]
    assert service["metadata"]["name"].startswith("jupyter-ds-")


# Inputs the original accepts but whose objects Kubernetes rejects, or that rejecting
# closes a hole: each is a row of COMPATIBILITY.md's strictness audit.
STILL_REFUSED = [
    ("image-number", _req(services={"jupyter-ds": _jupyter(image=5)}), "image"),
    ("entrypoint-number", _req(services={"jupyter-ds": _jupyter(entrypoint=5)}), "entrypoint"),
    ("limits-string", _req(services={"jupyter-ds": _jupyter(deploy={"resources": {"limits": "2"}})}), "limits"),
    ("username-empty", _req(who=principal(username="")), "username"),
    ("name-too-long", dict(_req(), name="a" * 35), "system name"),
    ("service-name-too-long", _req(services={"a" * 35: _jupyter()}, expose={"a" * 35: "8888"}), "service name"),
    ("extra-env-list", _req(who=principal(extra_container_env=["a"])), "extra_container_env"),
]


@pytest.mark.parametrize("name, request_, word", STILL_REFUSED, ids=[n for n, _, _ in STILL_REFUSED])
def test_still_refused_with_a_named_error(name, request_, word):
    with pytest.raises(TychoException) as err:
        compile_case({"name": name, "request": request_, "environ": dict(PROD)})
    assert word in str(err.value)


def test_original_accepted_what_we_refuse():
    # The audit's claim: these rows are stricter than the original.
    results = original_objects([{"name": n, "request": r, "environ": dict(PROD)} for n, r, _ in STILL_REFUSED])
    assert [n for (n, _, _), res in zip(STILL_REFUSED, results) if "objects" not in res] == []
