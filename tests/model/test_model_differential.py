"""Differential test of the two ways to build a system model: the parsed path
(``System.parse``, the core's parser) and the hand-built path (the ``System``,
``Container``, ``Service`` and ``Volumes`` constructors the original offers), on the same
inputs. Both must give the same objects: the volume rule, the CIDR rule and the
environment switches are the core's, called by both.

Inputs: the compose files in examples/, cases written here, and the HeLx corpus when
TYCHO_HELX_CORPUS names it.
"""

from pathlib import Path

import pytest
import yaml
from corpus import helx_corpus
from tycho.config import Config
from tycho.exceptions import TychoException
from tycho.model import Container, System, Volumes

ROOT = Path(__file__).resolve().parents[2]
PRINCIPAL = {"username": "ada", "host": "example.org", "access_token": None, "refresh_token": None}

# Attributes the System constructor derives itself (the rest are its arguments).
DERIVED = [
    "name", "system_name", "app_id", "identifier", "volumes", "dev_phase", "ambassador_id",
    "username", "username_all_hyphens", "host", "system_env", "extra_env", "namespace",
    "enable_init_container", "create_home_dirs", "stdnfs_pvc", "parent_dir", "subpath_dir",
    "shared_dir", "default_run_as_user", "default_run_as_group", "init_image_repository",
    "init_image_tag", "init_cpus", "init_memory", "gpu_resource_name", "irods_enabled",
    "gitea_host", "gitea_user", "gitea_service_name", "amb",
]
CONTAINER_FIELDS = ["name", "image", "command", "env", "identity", "ports", "expose", "depends_on", "volumes"]

SWITCHES = {
    "DEV_PHASE": "test",
    "AMBASSADOR_ID": "amb-1",
    "CREATE_HOME_DIRS": "False",
    "STDNFS_PVC": "nfs-home",
    "PARENT_DIR": "users",
    "SUBPATH_DIR": "sub",
    "SHARED_DIR": "common",
    "TYCHO_APP_INIT_IMAGE_TAG": "1.36",
    "TYCHO_APP_GPU_RESOURCE_NAME": "amd.com/gpu",
    "IROD_HOST": "irods.example.org",
    "NFSRODS_HOST": "nfsrods.example.org",
    "GITEA_HOST": "gitea.example.org",
}

OWN_CASES = {
    "volumes": {
        "services": {
            "app": {
                "image": "busybox:1.36",
                "ports": ["8080:8080"],
                "volumes": [
                    "pvc://data:/data",
                    "pvc://data/sub/dir:/sub:ro",
                    "pvc://other:/other:rw",
                ],
            },
            "side": {"image": "busybox:1.36", "volumes": ["pvc://data/x:/x"]},
        }
    },
    "plain": {"services": {"web": {"image": "nginx:1.27", "ports": ["80:80"], "environment": ["A=1", "B=x=y"]}}},
}


def _examples():
    for path in sorted((ROOT / "examples").glob("*/docker-compose.yaml")):
        yield f"examples/{path.parent.name}", yaml.safe_load(path.read_text())


def _corpus():
    for path in sorted((helx_corpus() / "app-specs").glob("*/docker-compose.yaml")):
        text = path.read_text()
        if "${" in text:
            continue  # needs its registry settings first (test_cli_settings.py renders it so)
        yield f"corpus/{path.parent.name}", yaml.safe_load(text)


def _inputs():
    yield from OWN_CASES.items()
    yield from _examples()


def _services_of(compose):
    out = {}
    for name, svc in (compose.get("services") or {}).items():
        if svc.get("ports"):
            out[name] = {"port": str(svc["ports"][-1]).rsplit(":", 1)[-1], "clients": ["10.0.0.0/8", "192.168.1.7"]}
    return out


def _parse(config, name, compose):
    return System.parse(config, name, dict(PRINCIPAL), compose, "default", env={}, services=_services_of(compose))


def _hand_built(config, parsed):
    containers = [{k: getattr(c, k) for k in CONTAINER_FIELDS} for c in parsed.containers]
    for given, c in zip(containers, parsed.containers):
        given["env"] = [list(e) for e in c.env]
    services = {k: {"port": v.port, "clients": v.clients} for k, v in parsed.services.items()}
    return System(
        config, parsed.system_name, dict(PRINCIPAL), parsed.serviceaccount, parsed.conn_string,
        parsed.proxy_rewrite, containers, parsed.identifier, parsed.gitea_integration,
        services=services, security_context=parsed.security_context,
        init_security_context=parsed.init_security_context,
    )


def _compare(parsed, built):
    for attr in DERIVED:
        assert getattr(built, attr, None) == getattr(parsed, attr, None), attr
    assert [c.to_dict() for c in built.containers] == [c.to_dict() for c in parsed.containers] or all(
        {k: getattr(b, k) for k in CONTAINER_FIELDS} == {k: getattr(p, k) for k in CONTAINER_FIELDS}
        for b, p in zip(built.containers, parsed.containers)
    )
    assert {k: v.to_dict() for k, v in built.services.items()} == {k: v.to_dict() for k, v in parsed.services.items()}
    assert built.requires_network_policy() == parsed.requires_network_policy()


@pytest.mark.parametrize("environ", [{}, SWITCHES], ids=["defaults", "switches"])
@pytest.mark.parametrize("case", list(_inputs()), ids=lambda c: c[0] if isinstance(c, tuple) else str(c))
def test_hand_built_equals_parsed(case, environ, monkeypatch):
    for key in SWITCHES:
        monkeypatch.delenv(key, raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    name, compose = case
    config = Config()
    parsed = _parse(config, "app-" + name.replace("/", "-").replace("_", "-")[:20], compose)
    _compare(parsed, _hand_built(config, parsed))


def test_corpus_hand_built_equals_parsed():
    cases = list(_corpus())
    if not cases:
        pytest.skip(f"HeLx corpus not found at {helx_corpus()} (set TYCHO_HELX_CORPUS to its helx-apps folder)")
    config = Config()
    for name, compose in cases:
        parsed = _parse(config, name.split("/")[-1], compose)
        _compare(parsed, _hand_built(config, parsed))


@pytest.mark.parametrize(
    "mount",
    ["pvc://Bad_Claim:/data", "pvc://claim", "nfs://claim:/data", "pvc://claim:/data:xx", "pvc://claim::ro"],
)
def test_both_paths_refuse_the_same_volumes(mount):
    """The volume rule is one: what the parser refuses, the constructors refuse, with the
    reason (tycho-api 1.17.3's Python path accepted the first two)."""
    config = Config()
    compose = {"services": {"app": {"image": "busybox:1.36", "volumes": [mount]}}}
    with pytest.raises(TychoException) as parsed:
        _parse(config, "app", compose)
    with pytest.raises(TychoException) as built:
        Volumes("id", [Container("app", "busybox:1.36", volumes=[mount])]).process_volumes()
    # The constructors keep the original's wording around the core's message.
    assert parsed.value.message in built.value.message
    assert built.value.message.startswith(f"Wrong Volume definition in Container:app and Volume:{mount}: ")


@pytest.mark.parametrize("client", ["10.0.0.1/8", "not-a-network", "300.1.1.1"])
def test_both_paths_refuse_the_same_clients(client):
    config = Config()
    compose = {"services": {"app": {"image": "busybox:1.36", "ports": ["80:80"]}}}
    with pytest.raises(TychoException):
        System.parse(config, "app", dict(PRINCIPAL), compose, None, env={}, services={"app": {"port": "80", "clients": [client]}})
    with pytest.raises(TychoException):
        System(config, "app", dict(PRINCIPAL), None, "", None, [Container("app", "busybox:1.36")], "id", False,
               services={"app": {"port": "80", "clients": [client]}})


# ------------------------------------------------------------------ the native conversion

class _Odd:
    """An object with public and private attributes (to_plain takes its __dict__)."""

    def __init__(self):
        self.a = (1, 2)
        self._hidden = "x"


class _WithToDict:
    def to_dict(self):
        return {"from": "to_dict", "n": 3}


def test_render_converts_the_model_natively_as_to_plain_does(tmp_path):
    """System.render converts the model in one native pass (tycho._native.render_model);
    what a template sees must equal what to_plain gives, for odd values too."""
    import datetime
    import json

    from tycho import _native
    from tycho.tycho_utils import to_plain

    (tmp_path / "dump.yaml").write_text("system: {{ system | tojson }}\nservice: {{ service | tojson }}\n")
    config = Config()
    config.conf = json.loads(json.dumps(config.conf))
    config.conf["tycho"]["templates"]["paths"] = [str(tmp_path)]
    compose = yaml.safe_load((ROOT / "examples" / "jupyter-ds" / "docker-compose.yaml").read_text())
    system = System.parse(config, "jupyter-ds", PRINCIPAL, compose, "default", {}, {})
    cycle: list = []
    cycle.append(cycle)
    system.odd = {
        "tuple": (1, "two", None), "set": {3}, "frozen": frozenset(["f"]),
        "object": _Odd(), "to_dict": _WithToDict(), "when": datetime.date(2026, 12, 2),
        "big": 2**63, "float": 1.5, "nested": [[[{"deep": ["x"]}]]], "cycle": cycle,
    }
    system.containers[0].extra = _Odd()
    service = next(iter(system.services.values()), _WithToDict())
    (native,) = system.render("dump.yaml", context={"service": service})
    reference = _native.render_template(
        "dump.yaml", {"system": to_plain(system.to_dict()), "service": to_plain(service)}, config=config.conf)
    assert native == reference[0]
    assert native["system"]["odd"]["tuple"] == [1, "two", None] and native["system"]["odd"]["set"] == [3]
    assert native["system"]["odd"]["object"] == {"a": [1, 2]}
    assert native["system"]["containers"][0]["extra"] == {"a": [1, 2]}


def test_render_names_the_field_of_a_value_that_cannot_cross():
    config = Config()
    compose = yaml.safe_load((ROOT / "examples" / "jupyter-ds" / "docker-compose.yaml").read_text())
    system = System.parse(config, "jupyter-ds", PRINCIPAL, compose, "default", {}, {})
    system.containers[0].limits.cpus = float("nan")
    with pytest.raises(TychoException, match=r"system field 'containers\.0\.limits\.cpus': NaN is not a finite number"):
        system.render("pod.yaml")
