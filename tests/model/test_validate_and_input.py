"""Every object the built-in templates produce passes kubernetes-validate in strict mode
(Kubernetes 1.30 and the newest schema it ships); bad input raises TychoException naming
the service, field and value; hostile values stay exactly the strings they were."""

from __future__ import annotations

import base64
import json

import kubernetes_validate
import pytest
from cases import CASES
from compile_case import compile_case
from start_requests import base_request
from tycho import _native
from tycho.exceptions import TychoException

VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]


def assert_valid(objects):
    assert objects
    for obj in objects:
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{obj['kind']} invalid for {version}: {e.message} at {list(e.path)}\n{json.dumps(obj, indent=1)}")


REFUSED = {
    # case name: words the error message must contain (service, field, value)
    "bad-missing-image": ["image", "jupyter-ds", "required"],
    "bad-volume-not-pvc": ["volume", "pvc://"],
    "bad-volume-pvc-no-slashes": ["volume", "pvc:"],
    "bad-client-cidr": ["clients", "CIDR"],
    "bad-client-cidr-host-bits": ["clients", "host bits"],
    "bad-probe-k8s-field-names": ["livenessProbe", "initialDelaySeconds"],
    "bad-principal-not-json": ["principal"],
    "pvc-volume-no-mount-path": ["volume", "pvc://datasets"],
}
OK_CASES = [c for c in CASES if c["name"] not in REFUSED]


def test_every_error_case_is_classified():
    errors = {c["name"] for c in CASES if c.get("expect_error")}
    assert errors & set(REFUSED), "the suite lost its bad-input cases"


@pytest.mark.parametrize("case", OK_CASES, ids=[c["name"] for c in OK_CASES])
def test_objects_validate_strictly(case):
    # Includes the cases where the original crashed (dict environment, int ports, no
    # ports at all, non-string settings, env null, quotes in settings): ours compiles them.
    assert_valid(compile_case(case))


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_bad_input_names_what_is_wrong(name):
    case = next(c for c in CASES if c["name"] == name)
    with pytest.raises(TychoException) as err:
        compile_case(case)
    for word in REFUSED[name]:
        assert word in str(err.value), f"{word!r} not in {err.value}"


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda r: r["system"]["services"]["nginx"].pop("image"), ["nginx", "image", "required"]),
        (lambda r: r["system"]["services"]["nginx"].update(ports=["80:http"]), ["nginx", "ports", "80:http"]),
        (lambda r: r["system"]["services"]["nginx"].update(ports=["70000"]), ["nginx", "ports", "70000"]),
        (lambda r: r["system"]["services"]["nginx"].update(volumes=["/data:/data"]), ["nginx", "volume", "/data:/data"]),
        (lambda r: r["services"]["nginx"].update(clients=["10.0.0.300/8"]), ["clients", "10.0.0.300/8"]),
        (lambda r: r["system"]["services"]["nginx"].update(deploy={"resources": {"limits": {"cpus": "lots"}}}), ["nginx", "cpus", "lots"]),
        (lambda r: r["system"].pop("services"), ["services"]),
        (lambda r: r.update(principal="{not json"), ["principal"]),
        (lambda r: r.update(name="My_App"), ["My_App"]),
        (lambda r: r.update(principal=json.dumps({"username": "a: b"})), ["username", "a: b"]),
        (lambda r: r.update(principal=json.dumps({"username": "../etc"})), ["username", "../etc"]),
        (lambda r: r["system"].update(placement={"nodeSelector": {"gpu": ["a100"]}}), ["placement", "nodeSelector.gpu"]),
        (lambda r: r["system"].update(placement={"tolerations": [{"key": "k", "effect": "Never"}]}), ["tolerations[0].effect", "Never"]),
        (lambda r: r["system"].update(gpu_resource="gpu"), ["gpu_resource", "gpu"]),
        (lambda r: r["system"]["services"]["nginx"].update(
            deploy={"resources": {"reservations": {"devices": [{"capabilities": ["gpu"], "count": "lots"}]}}}),
         ["nginx", "devices", "lots"]),
        (lambda r: r.update(system="services: [}"), ["system"]),
    ],
)
def test_bad_input_raises_tycho_exception(mutate, words):
    req = base_request()
    mutate(req)
    with pytest.raises(TychoException) as err:
        _native.compile_request(req)
    for w in words:
        assert w in str(err.value), f"{w!r} not in {err.value!r}"


PLACED = {
    "nodeSelector": {"pool": "gpu", "topology.kubernetes.io/zone": "z1"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "science", "effect": "NoSchedule"},
                    {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}],
    "affinity": {
        "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]},
        "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app-name": "nginx"}}}]},
    },
    "priorityClassName": "high",
    "runtimeClassName": "nvidia",
    "imagePullSecrets": [{"name": "regcred"}],
}


@pytest.mark.parametrize("username", ["jdoe", "Jane.Doe@example.org", "x" * 100])
def test_placement_gpus_and_any_username_validate_strictly(username):
    req = base_request(principal=json.dumps({"username": username, "host": "h.example.org"}))
    req["system"]["placement"] = PLACED
    req["system"]["gpu_resource"] = "nvidia.com/mig-1g.5gb"
    nginx = req["system"]["services"]["nginx"]
    nginx["deploy"] = {"placement": {"constraints": ["node.labels.gpu == a100", "node.hostname != n1"]},
                       "resources": {"reservations": {"devices": [{"capabilities": ["gpu"], "count": 2}]}}}
    req["system"]["services"]["amd"] = {"image": "rocm/rocm-terminal", "deploy": {"resources": {
        "reservations": {"devices": [{"capabilities": ["gpu"], "driver": "amd", "count": 1}]}}}}
    objects = _native.compile_request(req, ambassador=False)
    assert_valid(objects)
    spec = objects[0]["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"pool": "gpu", "topology.kubernetes.io/zone": "z1", "gpu": "a100"}
    assert [t.get("key") for t in spec["tolerations"]] == ["amd.com/gpu", "nvidia.com/mig-1g.5gb", "dedicated", None]
    labels = {o["kind"]: o["metadata"]["labels"]["username"] for o in objects}
    assert set(labels.values()) == {_native.username_label(username)}


def test_unknown_template_is_a_clear_error(tmp_path):
    with pytest.raises(TychoException, match='no template "nope.yaml"'):
        _native.render_template("nope.yaml", {"system": {}})


HOSTILE = [
    'x"y',
    "a: b",
    "#comment",
    "{{ 7*7 }}",
    "line1\nline2",
    "ünï cødé ✓",
    "--- \nkind: Secret",
    "'single'",
    "yes",
    "0600",
    "}{",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_no_injection_through_values(value):
    req = base_request(env={"GREETING": value})
    req["system"]["services"]["nginx"]["environment"] = {"RAW": value}
    req["principal"] = json.dumps({"username": "jdoe", "host": value, "access_token": value})
    objects = _native.compile_request(req, ambassador=True)
    dep = objects[0]
    entries = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    env = {name: e.get("value") for name, e in entries.items()}
    assert env["RAW"] == ("49" if value == "{{ 7*7 }}" else value)
    assert env["HOST"] == value
    # The token goes into the token Secret, byte for byte; the pod spec only refers to it.
    (secret,) = [o for o in objects if o["kind"] == "Secret"]
    assert base64.b64decode(secret["data"]["access_token"]).decode() == value
    ref = {"secretKeyRef": {"name": secret["metadata"]["name"], "key": "access_token"}}
    assert entries["access_token"] == {"name": "access_token", "valueFrom": ref}
    assert entries["ACCESS_TOKEN"] == {"name": "ACCESS_TOKEN", "valueFrom": ref}
    # Settings are rendered as templates (the original's feature), but never become YAML.
    expected = "49" if value == "{{ 7*7 }}" else value
    assert env["GREETING"] == expected
    assert [o["kind"] for o in objects] == ["Deployment", "Service", "Secret"]
    assert set(dep["spec"]["template"]["metadata"]["labels"]) == {
        "name", "username", "app-name", "original-app-name", "reaper-label", "executor", "tycho-guid", "tycho-app-id"
    }
    assert_valid(objects)


def test_no_injection_through_conn_string_and_rewrite_target():
    req = base_request()
    svc = req["system"]["services"]["nginx"]
    svc["conn_string"] = "lab?x=1\nheaders: {evil: 1}"
    svc["proxy_rewrite"] = {"enabled": True, "target": "/t: x\n#"}
    objects = _native.compile_request(req, ambassador=True)
    import yaml

    mapping = yaml.safe_load(objects[1]["metadata"]["annotations"]["getambassador.io/config"])
    assert mapping["rewrite"] == "/t: x\n#"
    assert mapping["prefix"].endswith("/lab?x=1\nheaders: {evil: 1}")
    assert mapping["headers"] == {"REMOTE_USER": "jdoe"}


def test_yaml11_reading_of_template_output(tmp_path):
    (tmp_path / "custom.yaml").write_text(
        "mode: 0600\nflag: yes\nunder: 1_000\nquoted: '0600'\nsexa: 1:30\nnone: {{ nothing }}\n"
        "text: {{ system.name }}\nf: {{ 0.01 }}\nb: {{ True }}\n---\nsecond: {{ None }}\n"
    )
    docs = _native.render_template("custom.yaml", {"system": {"name": "s"}}, config={"tycho": {"templates": {"paths": [str(tmp_path)]}}})
    assert docs == [
        {"mode": 384, "flag": True, "under": 1000, "quoted": "0600", "sexa": 90, "none": None, "text": "s", "f": 0.01, "b": True},
        {"second": "None"},
    ]


def test_python_style_printing():
    assert _native.render_string("{{ a }} {{ b }} {{ c }} {{ d }} {{ e }}", {"a": None, "b": True, "c": 0.01, "d": [1, "x"], "e": {"k": None}}) == "None True 0.01 [1, 'x'] {'k': None}"
    assert _native.render_string("{% for k, v in m.items() %}{{ k }}={{ v }};{% endfor %}{{ m|length }}", {"m": {"a": 1, "b": 2}}) == "a=1;b=2;2"
    assert _native.render_string("{{ x == None }} {{ y != None }}", {"x": None, "y": 1}) == "True True"


def test_default_limits_are_opt_in_on_kubernetes(monkeypatch):
    """TYCHO_APP_DEFAULT_CPUS / _MEMORY (or tycho.compute.system.default_limits) give a
    container without limits a cpu and memory limit; unset, the pod is the original's."""
    for name in ("TYCHO_APP_DEFAULT_CPUS", "TYCHO_APP_DEFAULT_MEMORY", "TYCHO_APP_DEFAULT_PIDS"):
        monkeypatch.delenv(name, raising=False)

    def container(**kw):
        objects = _native.compile_request(base_request(), **kw)
        assert_valid(objects)
        (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
        return deployment["spec"]["template"]["spec"]["containers"][0]

    assert "resources" not in container()
    monkeypatch.setenv("TYCHO_APP_DEFAULT_CPUS", "1")
    monkeypatch.setenv("TYCHO_APP_DEFAULT_MEMORY", "2Gi")
    monkeypatch.setenv("TYCHO_APP_DEFAULT_PIDS", "100")  # Docker only: no pod field
    assert container()["resources"] == {"limits": {"cpu": "1", "memory": "2Gi"}}
    monkeypatch.delenv("TYCHO_APP_DEFAULT_CPUS")
    monkeypatch.delenv("TYCHO_APP_DEFAULT_MEMORY")
    config = {"tycho": {"compute": {"system": {"default_limits": {"memory": "512Mi"}}}}}
    assert container(config=config)["resources"] == {"limits": {"memory": "512Mi"}}
    monkeypatch.setenv("TYCHO_APP_DEFAULT_MEMORY", "lots")
    with pytest.raises(TychoException, match='TYCHO_APP_DEFAULT_MEMORY: "lots" is not a memory amount'):
        container()
