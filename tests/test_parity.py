"""Differential tests: the original tycho-api 1.17.3 (installed from PyPI into its own
virtualenv by tests/parity/orig_env.py) and ours compile the same start requests; the
objects must be equal once GUIDs are normalised and the deliberate differences listed in
COMPATIBILITY.md are applied. Each normalisation below names its COMPATIBILITY.md row.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re

import pytest
import yaml
from cases import CASES
from compile_case import UID, compile_case
from run_oracle import original_objects
from tycho import _native
from tycho.exceptions import TychoException

GUID = "0123456789abcdef0123456789abcdef"
PROBE_TIMING = ("initialDelaySeconds", "periodSeconds", "failureThreshold")


@pytest.fixture(scope="module")
def originals():
    return {r["name"]: r for r in original_objects(CASES)}


def ours(case):
    objects = compile_case(case, identifier=GUID)
    return json.loads(json.dumps(objects).replace(GUID, "<GUID>"))


def typed(v):
    """Row 'values are strings': compare the YAML 1.1 reading of a string."""
    if isinstance(v, str):
        try:
            return yaml.safe_load(v) if v else None
        except yaml.YAMLError:
            return v
    return v


def prune(v):
    """Row 'null fields omitted': drop None, "" and containers left empty."""
    if isinstance(v, dict):
        out = {k: prune(x) for k, x in v.items()}
        return {k: x for k, x in out.items() if x not in (None, "", {}, [])}
    if isinstance(v, list):
        return [prune(x) for x in v]
    return v


def containers_of(obj):
    return obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []


TOKEN_FIELDS = ("access_token", "refresh_token")


def has_token(value):
    return (isinstance(value, str) and value != "") or (isinstance(value, (int, float)) and not isinstance(value, bool))


def token_ref(deployment_name, key):
    return {"secretKeyRef": {"name": f"{deployment_name}-tokens", "key": key}}


def expected_principal_env(env, principal, deployment_name):
    """1.17.3's container env turned into ours by the deliberate differences, each
    asserted on the way (the result is then compared exactly with ours):

    * Row 'ACCESS_TOKEN by Secret': 1.17.3 sets no ACCESS_TOKEN; ours sets it right
      after USER from the system's token Secret; the principal's own token fields
      (literal in 1.17.3) read the Secret too.
    * Row 'extra_container_env': its entries follow ACCESS_TOKEN (1.17.3 wrote one
      variable holding a mapping, at the end).
    * Row 'principal env: scalars only': principal fields that are None, a list or a
      mapping are left out (1.17.3 wrote e.g. refresh_token "None").
    """
    n = len(principal)
    head, tail = env[:len(env) - n], env[len(env) - n:]
    # 1.17.3 writes the principal's fields last, in order.
    assert [e.get("name") for e in tail] == list(principal), (tail, list(principal))
    assert "ACCESS_TOKEN" not in [e.get("name") for e in env]
    out_tail = []
    for entry, (key, value) in zip(tail, principal.items()):
        if key == "extra_container_env" and isinstance(value, dict):
            continue
        if value is None:
            assert entry.get("value") in ("None", None), entry  # the "None" string of 1.17.3
            continue
        if isinstance(value, (list, dict)):
            continue
        if key in TOKEN_FIELDS and has_token(value):
            out_tail.append({"name": key, "valueFrom": token_ref(deployment_name, key)})
            continue
        out_tail.append(entry)
    inserted = []
    if has_token(principal.get("access_token")):
        inserted.append({"name": "ACCESS_TOKEN", "valueFrom": token_ref(deployment_name, "access_token")})
    extra = principal.get("extra_container_env") or {}
    if isinstance(extra, dict):
        inserted.extend({"name": k, "value": "" if v is None else str(v)} for k, v in extra.items())
    head_names = [e.get("name") for e in head]
    # after the GUID, USER_NAME, USER run that tycho writes (settings may name USER too)
    at = max(i for i in range(len(head_names) - 2) if head_names[i:i + 3] == ["GUID", "USER_NAME", "USER"]) + 3
    return head[:at] + inserted + head[at:] + out_tail


def normalise(obj, side, principal=None):
    """``principal`` (the request's, as a dict): turn the original's env into ours by
    :func:`expected_principal_env` (only with ``side="original"``)."""
    obj = copy.deepcopy(obj)
    kind = obj.get("kind")
    meta = obj.setdefault("metadata", {})
    if kind == "Deployment":
        tmpl = obj["spec"]["template"]
        # Row 'pod template': the original leaves apiVersion/kind/name of the Pod in it.
        for key in ("apiVersion", "kind"):
            tmpl.pop(key, None)
        tmpl.get("metadata", {}).pop("name", None)
        labels = tmpl.get("metadata", {}).get("labels", {})
        # Row 'tycho-app-id label': null in the original, the app id in ours.
        labels.pop("tycho-app-id", None)
        for k in list(labels):
            labels[k] = typed(labels[k])
        for c in containers_of(obj):
            env = c.get("env") or []
            if principal is not None and side == "original":
                env = expected_principal_env(env, principal, meta.get("name"))
            # Row 'extra_container_env': expanded into variables in ours.
            expanded = []
            for e in env:
                if e.get("name") == "extra_container_env" and isinstance(e.get("value"), dict):
                    expanded.extend({"name": k, "value": str(v)} for k, v in e["value"].items())
                else:
                    expanded.append(e)
            c["env"] = [{"name": e.get("name"), "value": typed(e.get("value")), "valueFrom": e.get("valueFrom")}
                        for e in expanded]
            # Row 'probe timing': the original puts these on the container.
            if side == "ours":
                for probe in ("livenessProbe", "readinessProbe"):
                    for key in PROBE_TIMING:
                        if key in (c.get(probe) or {}):
                            c[key] = c[probe].pop(key)
            # Row 'memory None': the original writes memory "None" when only cpus is set.
            for part in ("limits", "requests"):
                res = (c.get("resources") or {}).get(part) or {}
                if res.get("memory") == "None":
                    res.pop("memory")
    if kind == "Service":
        meta.pop("resourceversion", None)
        obj.pop("resourceversion", None)  # Row 'Service resourceversion'.
        labels = meta.get("labels", {})
        # Row 'conn_string label': only kept when it is a valid label value.
        if not re.fullmatch(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", str(labels.get("conn_string") or "")):
            labels.pop("conn_string")
        for k in list(labels):
            labels[k] = typed(labels[k])
        ann = meta.get("annotations") or {}
        if "getambassador.io/config" in ann:
            docs = [d for d in yaml.safe_load_all(ann["getambassador.io/config"]) if d]
            for d in docs:
                # Row 'Mapping service port': the original writes ":None" when the first
                # container is not named like the app.
                if str(d.get("service", "")).endswith(":None"):
                    d["service"] = "<port>"
            ann["getambassador.io/config"] = docs
    return prune(obj)


def env_equal(o, u):
    """Row 'env values with =': the original cuts a value at its second '='."""
    return o == u or (isinstance(u, str) and o == typed(str(u).split("=")[0]))


def assert_same(orig, mine, where):
    if isinstance(orig, dict) and isinstance(mine, dict):
        assert sorted(orig) == sorted(mine), f"{where}: keys differ: {sorted(orig)} vs {sorted(mine)}"
        for k in orig:
            assert_same(orig[k], mine[k], f"{where}.{k}")
    elif isinstance(orig, list) and isinstance(mine, list):
        assert len(orig) == len(mine), f"{where}: {len(orig)} vs {len(mine)} items:\n{orig}\n{mine}"
        for i, (a, b) in enumerate(zip(orig, mine)):
            if where.endswith(".env") and isinstance(a, dict) and a.get("name") == b.get("name"):
                assert env_equal(a.get("value"), b.get("value")), f"{where}[{i}] {a} vs {b}"
            else:
                assert_same(a, b, f"{where}[{i}]")
    elif where.endswith("getambassador.io/config[0].service") and orig == "<port>":
        # Row 'Mapping service port': ours names the app container's first port.
        assert re.fullmatch(r".+-<GUID>:\d+", mine), mine
    else:
        assert orig == mine, f"{where}: original {orig!r} vs ours {mine!r}"


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


def principal_of(case):
    return json.loads(case["request"]["principal"])


def pop_token_secret(mine, principal, owner_uid=None):
    """Row 'ACCESS_TOKEN by Secret': ours adds the system's token Secret (1.17.3 has none)
    when the principal has a token; it is checked here and taken out of the comparison."""
    secrets = [o for o in mine if o["kind"] == "Secret"]
    rest = [o for o in mine if o["kind"] != "Secret"]
    tokens = {k: str(principal[k]) for k in TOKEN_FIELDS if has_token(principal.get(k))}
    if not tokens:
        assert secrets == []
        return rest
    (secret,) = secrets
    (deployment,) = [o for o in mine if o["kind"] == "Deployment"]
    name = deployment["metadata"]["name"]
    assert secret["metadata"]["name"] == f"{name}-tokens" and secret["type"] == "Opaque"
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == tokens
    assert secret["metadata"]["labels"]["tycho-guid"] == deployment["metadata"]["labels"]["tycho-guid"]
    if owner_uid is not None:
        (owner,) = secret["metadata"]["ownerReferences"]
        assert owner["kind"] == "Deployment" and owner["name"] == name and owner["uid"] == owner_uid
    for token in tokens.values():
        if len(token) >= 8:  # short test values ("true") occur in objects anyway
            assert token not in json.dumps(rest), "a token outside the Secret"
    return rest


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
