"""Odd-but-accepted start requests for the strictness differential test
(tests/parity/test_strictness_parity.py): inputs tycho-api 1.17.3 accepts although they are
unusual (a services entry for a container the compose document lacks, a limits list,
unknown compose keys, ...). Each case is in the format of cases.py; ``warns`` names
the field (and value) each of ours' WARNINGs must name, one WARNING per entry.
"""

from __future__ import annotations

import copy
import json

from cases import JUPYTER, NGINX, PROD, app_request, case, principal


def _jupyter(**changes):
    svc = copy.deepcopy(JUPYTER)
    for k, v in changes.items():
        if v is None:
            svc.pop(k, None)
        else:
            svc[k] = v
    return svc


def _req(services=None, expose=None, **kw):
    services = services if services is not None else {"jupyter-ds": _jupyter()}
    return app_request("jupyter-ds", services, expose=expose, **kw)


def _odd(name, request, note, warns=None, environ=None, **extra):
    c = case(name, request, environ if environ is not None else dict(PROD), note=note, **extra)
    if warns:
        c["warns"] = warns
    return c


def _with(request, path, value):
    """``request`` with ``value`` set at the key path ``path`` (a tuple)."""
    out = copy.deepcopy(request)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


BASE = _req()
J = ("system", "services", "jupyter-ds")

ODD_CASES = [
    # ---------------------------------------------------------------- services entries
    _odd("services-entry-without-container", _req(expose={"jupyter-ds": "8888", "jupyter-datascience": "8888"}),
         "the issue's example: a services entry naming no compose service is ignored",
         warns=["services.jupyter-datascience"]),
    _odd("services-entry-only-unknown", _req(expose={"nope": "8080"}),
         "the only services entry names no compose service: no Service is created",
         warns=["services.nope"]),
    _odd("services-entry-unknown-int-port", _req(expose={"jupyter-ds": "8888", "other": {"port": 9000}}),
         "unknown entry without clients", warns=["services.other"]),
    _odd("services-entry-port-int", _req(expose={"jupyter-ds": {"port": 8888, "clients": []}}),
         "services port as a number"),
    _odd("services-entry-port-missing", _req(expose={"jupyter-ds": {"clients": []}}),
         "services entry without port: the container's ports are used"),
    _odd("services-empty", _req(expose={}), "no services at all: no Service"),
    # ---------------------------------------------------------------- principal
    _odd("principal-extra-fields", _req(who=principal(email="jdoe@example.org", team="lab")),
         "extra principal fields become env vars"),
    _odd("principal-username-dots", _req(who=principal(username="j.doe_x")),
         "username with . and _"),
    _odd("principal-username-upper", _req(who=principal(username="JDoe")), "username with capitals"),
    _odd("principal-compact-json", _with(BASE, ("principal",), json.dumps({"username": "jdoe", "host": "h.org"})),
         "a principal without tokens"),
    _odd("principal-extra-env-string", _req(who=principal(extra_container_env="abc")),
         "extra_container_env that is a string: one env var named extra_container_env, as the original",
         warns=["extra_container_env"]),
    # ---------------------------------------------------------------- service account
    _odd("serviceaccount-false", _req(serviceaccount=False),
         "a false service account means none", warns=["serviceaccount"]),
    _odd("serviceaccount-empty", _req(serviceaccount=""), "an empty service account means none"),
    _odd("serviceaccount-null", _req(serviceaccount=None), "a null service account means none"),
    # ---------------------------------------------------------------- compose document
    _odd("compose-unknown-service-keys",
         _req(services={"jupyter-ds": _jupyter(restart="always", container_name="x", networks=["default"],
                                               **{"x-note": "hi"})}),
         "compose keys tycho does not use are ignored (labels and healthcheck are converted now: "
         "tests/model/test_compose_keys.py)", warns=["'container_name'", "'networks'", "'restart'"]),
    _odd("compose-unknown-top-keys",
         _with(_with(BASE, ("system", "networks"), {"default": {"external": {"name": "x_default"}}}),
               ("system", "x-extra"), {"a": 1}),
         "top-level compose keys tycho does not use are ignored", warns=["'networks'"]),
    _odd("compose-no-version", _with(BASE, ("system",), {k: v for k, v in BASE["system"].items() if k != "version"}),
         "no version key"),
    _odd("depends-on-mapping", _req(services={"jupyter-ds": _jupyter(depends_on={"db": {"condition": "service_started"}}),
                                              "db": dict(NGINX)}),
         "depends_on in the long form", warns=["'depends_on'"]),
    _odd("limits-one-element-list",
         _req(services={"jupyter-ds": _jupyter(deploy={"resources": {"limits": [{"cpus": "1", "memory": "2G"}]}})}),
         "limits given as a list: the original uses its first element", warns=["deploy.resources.limits"],
         gpu_quirk=True),
    _odd("limits-empty-mapping", _req(services={"jupyter-ds": _jupyter(deploy={"resources": {"limits": {}}})}),
         "empty limits"),
    _odd("resources-empty", _req(services={"jupyter-ds": _jupyter(deploy={"resources": {}})}), "empty resources"),
    _odd("deploy-empty", _req(services={"jupyter-ds": _jupyter(deploy={})}), "empty deploy"),
    _odd("limits-cpus-number", _req(services={"jupyter-ds": _jupyter(deploy={"resources": {"limits": {"cpus": 2, "memory": "1Gi"}}})}),
         "cpus as a number"),
    _odd("limits-cpus-fraction", _req(services={"jupyter-ds": _jupyter(deploy={"resources": {"limits": {"cpus": 0.5, "memory": "512Mi"}}})}),
         "fractional cpus"),
    _odd("gpus-string-zero", _req(services={"jupyter-ds": _jupyter(deploy={"resources": {"limits": {"cpus": "1", "memory": "1G", "gpus": "0"}}})}),
         "gpus as the string 0"),
    _odd("entrypoint-empty", _req(services={"jupyter-ds": _jupyter(entrypoint="")}), "an empty entrypoint"),
    _odd("entrypoint-absent", _req(services={"jupyter-ds": _jupyter(entrypoint=None)}), "no entrypoint"),
    _odd("entrypoint-list-numbers", _req(services={"jupyter-ds": _jupyter(entrypoint=["sleep", "3600"])}),
         "entrypoint as a list"),
    _odd("environment-entry-without-equals", _req(services={"jupyter-ds": _jupyter(environment=["FLAG", "A=1"])}),
         "an environment entry without '=' is a variable with an empty value"),
    _odd("environment-empty-list", _req(services={"jupyter-ds": _jupyter(environment=[])}), "empty environment"),
    _odd("env-and-environment", _req(services={"jupyter-ds": _jupyter(env=["E=1"], environment=["F=2"])}),
         "env wins over environment"),
    _odd("expose-numbers", _req(services={"jupyter-ds": _jupyter(expose=[8888, 9999])}), "expose as numbers"),
    _odd("ports-number-strings", _req(services={"jupyter-ds": _jupyter(ports=["8888"])}), "a bare port"),
    _odd("volumes-empty", _req(services={"jupyter-ds": _jupyter(volumes=[])}), "no volumes"),
    _odd("volume-subpath-trailing-slash",
         _req(services={"jupyter-ds": _jupyter(volumes=["pvc://claim1/sub/dir/:/data"])}), "subpath ending in /"),
    _odd("security-context-extra-keys",
         _req(security_context={"runAsUser": 1000, "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}),
         "security context keys tycho does not use"),
    _odd("security-context-strings", _req(security_context={"runAsUser": "1001", "fsGroup": "100"}),
         "security context values as strings"),
    _odd("ext-null", _req(services={"jupyter-ds": _jupyter()}, ext=None), "ext: null"),
    _odd("ext-kube-empty", _req(services={"jupyter-ds": _jupyter()}, ext={"kube": {}}), "ext.kube without probes"),
    _odd("probe-none-strings", _req(ext={"kube": {"livenessProbe": "none", "readinessProbe": "none"}}),
         "probes switched off with 'none'"),
    _odd("proxy-rewrite-extra-keys", _req(proxy_rewrite={"enabled": True, "target": "/x", "note": "n"}),
         "proxy_rewrite with an unused key"),
    _odd("gitea-integration-string", _req(gitea_integration="yes"), "gitea_integration truthy string"),
    _odd("settings-nested-value", _req(settings={"OPTS": {"a": 1}, "LIST": [1, 2]}),
         "settings values that are a mapping and a list are printed as Python does"),
    _odd("settings-override-username", _req(settings={"username": "other", "PLAIN": "x"}),
         "a setting named like an added key is overwritten"),
    _odd("clients-ipv6-and-host", _req(expose={"jupyter-ds": {"port": "8888", "clients": ["::1", "192.168.1.5"]}}),
         "client addresses without prefix length"),
]
