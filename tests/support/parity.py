"""The normalisation of the parity tests: turns the original tycho-api 1.17.3's objects
and ours into comparable form (GUIDs, the deliberate differences of COMPATIBILITY.md,
each normalisation naming its row) and compares them (``assert_same``).

Used by test_parity.py, test_strictness_parity.py and test_executor_differential.py.
"""

from __future__ import annotations

import base64
import copy
import json
import re

import yaml

GUID = "0123456789abcdef0123456789abcdef"
PROBE_TIMING = ("initialDelaySeconds", "periodSeconds", "failureThreshold")


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


def gpu_tolerations(deployment):
    """Row 'GPU toleration': the original tolerates the GPU resource only when the
    first container has ``limits.gpus``; ours adds one toleration per extended resource
    (``<domain>/<name>``) that any container asks for in its limits or requests, in
    container order. The original's Deployment turned into that (in place)."""
    spec = deployment["spec"]["template"]["spec"]
    keys = []
    for c in containers_of(deployment):
        for part in ("limits", "requests"):
            for key, value in ((c.get("resources") or {}).get(part) or {}).items():
                if "/" in key and value is not None and key not in keys:
                    keys.append(key)
    tolerations = [t for t in spec.get("tolerations") or []
                   if not (t.get("operator") == "Exists" and t.get("effect") == "NoSchedule")]
    tolerations = [{"key": k, "operator": "Exists", "effect": "NoSchedule"} for k in keys] + tolerations
    if tolerations:
        spec["tolerations"] = tolerations
    else:
        spec.pop("tolerations", None)


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
        if side == "original":
            gpu_tolerations(obj)
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
