"""Start-request cases for the differential parity tests.

``CASES`` is a list of dicts, each::

    {"name": str,                 # unique
     "request": {...},            # exactly like POST /system/start
     "environ": {VAR: value},     # every switch the case relies on (all others unset)
     "ambassador": bool,          # a Service named "ambassador" exists in the namespace
     "missing_pvcs": [...],       # optional: claims that do not exist in the cluster
     "env_secret": {...},         # optional: data of the "<app>-env" Secret
     "expect_error": bool,        # the ORIGINAL fails on this request
     "note": str}                 # what the case exercises

The requests mimic what appstore's TychoContext.start (tycho-api 1.17.3) sends:
the app's own compose service carries ``ext``, ``conn_string``, ``proxy_rewrite``,
``gitea_integration`` and ``deploy.resources``; the top level carries
``security_context``; ``principal`` is ``json.dumps(..., indent=4)``.
"""

from __future__ import annotations

import copy
import json

# ---------------------------------------------------------------- helpers


def principal(
    username="jdoe",
    access_token="a1b2c3d4e5",
    refresh_token="r9s8t7u6",
    host="helx.example.org",
    **extra,
) -> str:
    data = {
        "username": username,
        "access_token": access_token,
        "refresh_token": refresh_token,
        "host": host,
    }
    data.update(extra)
    return json.dumps(data, indent=4)


def resources(
    cpus="1", memory="4000M", gpus=None, ephemeral=None, reservations=True
) -> dict:
    """A deploy.resources block like appstore's resource_request."""
    limits = {"cpus": cpus, "memory": memory}
    if gpus is not None:
        limits["gpus"] = gpus
    if ephemeral is not None:
        limits["ephemeralStorage"] = ephemeral
    out = {"resources": {"limits": limits}}
    if reservations:
        res = dict(limits)
        out["resources"]["reservations"] = res
    return out


def app_request(
    app,
    services,
    *,
    settings=None,
    expose=None,
    serviceaccount="default",
    who=None,
    security_context=None,
    ext=None,
    conn_string="",
    proxy_rewrite=None,
    gitea_integration=False,
    app_level=True,
):
    """Build a start request the way appstore's TychoContext.start does."""
    services = copy.deepcopy(services)
    system = {"version": "3.0", "services": services}
    system["security_context"] = security_context or {}
    if app_level and app in services:
        svc = services[app]
        svc["ext"] = ext
        svc["conn_string"] = conn_string
        svc["proxy_rewrite"] = proxy_rewrite or {"enabled": False, "target": None}
        svc["gitea_integration"] = gitea_integration
    if expose is None:
        expose = {app: "8888"}
    svc_req = {}
    for name, port in expose.items():
        if isinstance(port, dict):
            svc_req[name] = port
        else:
            svc_req[name] = {"port": str(port), "clients": []}
    req = {
        "name": app,
        "principal": who if who is not None else principal(),
        "serviceaccount": serviceaccount,
        "env": settings if settings is not None else {},
        "system": system,
        "services": svc_req,
    }
    if serviceaccount is _ABSENT:
        del req["serviceaccount"]
    return req


_ABSENT = object()

PROD = {
    "DEV_PHASE": "prod",
    "CREATE_HOME_DIRS": "true",
    "TYCHO_APP_ENABLE_INIT_CONTAINER": "true",
    "STDNFS_PVC": "stdnfs",
    "PARENT_DIR": "/home",
    "SHARED_DIR": "shared",
}


def env(**kw) -> dict:
    out = dict(PROD)
    for k, v in kw.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def case(
    name, request, environ, *, ambassador=False, note="", expect_error=False, **extra
):
    c = {
        "name": name,
        "request": request,
        "environ": environ,
        "ambassador": ambassador,
        "expect_error": expect_error,
        "note": note,
    }
    c.update(extra)
    return c


# ------------------------------------------------------------- app specs

JUPYTER = {
    "image": "helxplatform/jupyter-ds:v1.2.3",
    "entrypoint": "start.sh jupyter lab --LabApp.token= --ip=0.0.0.0 "
    "--NotebookApp.base_url=${NB_PREFIX} --NotebookApp.allow_origin='*'",
    "ports": ["8888:8888"],
    "environment": ["JUPYTER_ENABLE_LAB=yes", "NB_USER={{ username }}"],
    "deploy": resources("1", "4000M", gpus=0, ephemeral="0"),
}

RSTUDIO = {
    "image": "helxplatform/rstudio-server:1.4.1103",
    "entrypoint": ["/init"],
    "ports": ["8787:8787"],
    "environment": [
        "DISABLE_AUTH=true",
        "USER={{ username }}",
        "ROOT=TRUE",
    ],
    "deploy": resources(2.0, "8G", reservations=False),
}

NGINX = {
    "image": "nginx:1.25-alpine",
    "ports": ["80"],
    "expose": ["80"],
}

WEBTOP = {
    "image": "helxplatform/webtop:ubuntu-kde-gpu",
    "entrypoint": "/init",
    "ports": ["3000:3000"],
    "expose": ["3000"],
    "environment": [
        "PUID=1000",
        "PGID=1000",
        "TZ=Etc/UTC",
        "SUBFOLDER=/private/webtop/{{ username }}/{{ identifier }}/",
    ],
    "deploy": resources("4", "16Gi", gpus=1, ephemeral="10G"),
}

MULTI = {
    "cloudtop": {
        "image": "helxplatform/cloudtop:0.3.0",
        "entrypoint": ["/bin/sh", "-c", "exec /init --port={{ system_port }}"],
        "ports": ["8080:8080"],
        "expose": ["8080"],
        "environment": ["DB_HOST=localhost", "APP_ID={{ identifier }}"],
        "depends_on": ["db"],
        "deploy": resources("1", "2G"),
    },
    "db": {
        "image": "postgres:15",
        "ports": ["5432"],
        "expose": ["5432"],
        "environment": [
            "POSTGRES_PASSWORD=secret",
            "PGDATA=/var/lib/postgresql/data/pg",
        ],
        "deploy": resources("0.5", "1G", reservations=False),
    },
    "redis": {
        "image": "redis:7",
        "entrypoint": "redis-server --appendonly yes",
        "expose": ["6379"],
        "ext": {
            "kube": {
                "livenessProbe": {
                    "tcpSocket": {"port": 6379},
                    "delay": 5,
                    "period": 10,
                },
                "readinessProbe": {"cmd": ["redis-cli", "ping"], "threshold": 3},
            }
        },
    },
}

PROBES = {
    "livenessProbe": {
        "httpGet": {
            "path": "/healthz",
            "port": 8080,
            "httpHeaders": {"X-Probe": "liveness", "Accept": "application/json"},
        },
        "delay": 30,
        "period": 15,
        "threshold": 5,
    },
    "readinessProbe": {"cmd": ["cat", "/tmp/ready"], "delay": 5, "period": 5},
}


def _multi(**override):
    spec = copy.deepcopy(MULTI)
    for k, v in override.items():
        spec[k] = v
    return spec


# ------------------------------------------------------------------ cases

CASES = [
    case(
        "jupyter-ds-ambassador-prod",
        app_request("jupyter-ds", {"jupyter-ds": JUPYTER}, settings={"NB_PREFIX": "/"}),
        env(AMBASSADOR_ID="helx-ambassador"),
        ambassador=True,
        note="typical appstore launch; gpus 0 still renders a GPU limit and "
        "toleration; ephemeralStorage '0' is skipped",
    ),
    case(
        "jupyter-ds-loadbalancer",
        app_request("jupyter-ds", {"jupyter-ds": JUPYTER}),
        env(),
        ambassador=False,
        note="no ambassador service: Service type LoadBalancer, NB_PREFIX /",
    ),
    case(
        "rstudio-security-context-conn-string",
        app_request(
            "rstudio-server",
            {"rstudio-server": RSTUDIO},
            expose={"rstudio-server": "8787"},
            security_context={"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 100},
            conn_string="rstudio/",
            proxy_rewrite={"enabled": True, "target": None},
        ),
        env(AMBASSADOR_ID=""),
        ambassador=True,
        note="entrypoint list, float cpus without reservations, rewrite with no target",
    ),
    case(
        "nginx-test-phase-no-serviceaccount",
        app_request(
            "nginx",
            {"nginx": NGINX},
            expose={"nginx": "80"},
            serviceaccount=None,
        ),
        {"DEV_PHASE": "test"},
        ambassador=False,
        note="container-only port, expose, no resources; DEV_PHASE=test: no default "
        "volumes, no init container, ip 127.0.0.1; serviceaccount None",
    ),
    case(
        "nginx-serviceaccount-absent",
        app_request(
            "nginx", {"nginx": NGINX}, expose={"nginx": "80"}, serviceaccount=_ABSENT
        ),
        env(),
        ambassador=True,
        note="request without serviceaccount key -> 'default'",
    ),
    case(
        "webtop-gpu-dev-rewrite-target",
        app_request(
            "webtop",
            {"webtop": WEBTOP},
            expose={"webtop": "3000"},
            proxy_rewrite={"enabled": True, "target": "/"},
            conn_string="",
            security_context={"runAsUser": 0, "runAsGroup": 0, "fsGroup": 0},
        ),
        env(
            DEV_PHASE="dev",
            TYCHO_APP_GPU_RESOURCE_NAME="amd.com/gpu",
            AMBASSADOR_ID="amb-1",
        ),
        ambassador=True,
        note="GPU limit with custom resource name, toleration, ephemeral-storage, "
        "DEV_PHASE=dev drops REMOTE_USER header, rewrite target + X-Original-Path; "
        "runAsUser 0 in compose becomes the string '0', which is truthy: runAsUser: 0",
    ),
    case(
        "multi-container-probes-two-services",
        app_request(
            "cloudtop",
            _multi(),
            expose={"cloudtop": "8080", "db": "5432"},
            ext={"kube": PROBES},
        ),
        env(),
        ambassador=True,
        note="three containers, services for two; httpGet with headers, exec, "
        "tcpSocket probes; {{ system_port }} and {{ identifier }} in compose; "
        "securityContext and initContainers repeated per container (duplicate "
        "YAML keys, last wins); probe delay/period/threshold land on the container",
    ),
    case(
        "multi-container-app-not-first",
        app_request(
            "cloudtop",
            {
                "db": MULTI["db"],
                "cloudtop": MULTI["cloudtop"],
                "auth-proxy": {
                    "image": "quay.io/oauth2-proxy/oauth2-proxy:v7.5.1",
                    "entrypoint": ["/bin/oauth2-proxy", "--http-address=0.0.0.0:4180"],
                    "ports": ["4180:4180"],
                },
            },
            expose={"cloudtop": "8080", "auth-proxy": "4180"},
            ext={"kube": {"livenessProbe": "none", "readinessProbe": "none"}},
            conn_string="desktop/",
            proxy_rewrite={"enabled": True, "target": "/"},
            gitea_integration=True,
        ),
        env(),
        ambassador=True,
        note="yaml.dump sorts the compose keys, so containers come alphabetically and "
        "'auth-proxy' is first: kube.start leaves system_port None (Mapping "
        "'service: <name>:None'); conn_string/proxy_rewrite/gitea_integration are "
        "read from the LAST service (db), so the app's values are ignored; "
        "probes 'none'",
    ),
    case(
        "multi-container-loadbalancer-test-phase",
        app_request(
            "cloudtop",
            _multi(),
            expose={"cloudtop": "8080", "redis": {"port": "6379", "clients": []}},
        ),
        {"DEV_PHASE": "test"},
        ambassador=False,
        expect_error=True,
        note="service for a container with no ports: ports renders as null and the "
        "original's start iterates None (a real API server rejects it too)",
    ),
    case(
        "pvc-volumes-shared-claim",
        app_request(
            "cloudtop",
            {
                "cloudtop": dict(
                    MULTI["cloudtop"],
                    volumes=[
                        "pvc://datasets:/data",
                        "pvc://workspace/projects/alpha:/work",
                    ],
                ),
                "db": dict(
                    MULTI["db"],
                    volumes=["pvc://workspace/db/pgdata:/var/lib/postgresql/data"],
                ),
            },
            expose={"cloudtop": "8080"},
        ),
        env(),
        ambassador=True,
        note="pvc://claim:/mnt (subPath ''), pvc://claim/sub/path:/mnt, two containers "
        "sharing one claim (only the first declares the PVC volume)",
    ),
    case(
        "pvc-volume-missing-claim",
        app_request(
            "jupyter-ds",
            {
                "jupyter-ds": dict(
                    JUPYTER,
                    volumes=["pvc://datasets:/data", "pvc://scratch/u1:/scratch"],
                )
            },
        ),
        env(),
        ambassador=True,
        missing_pvcs=["scratch"],
        note="check_volumes drops volumes whose claim does not exist (stdnfs exempt)",
    ),
    case(
        "pvc-volume-no-mount-path",
        app_request(
            "jupyter-ds", {"jupyter-ds": dict(JUPYTER, volumes=["pvc://datasets"])}
        ),
        env(),
        ambassador=True,
        note="pvc://claim without ':<path>': mountPath and subPath print as None",
    ),
    case(
        "network-policy-clients",
        app_request(
            "jupyter-ds",
            {"jupyter-ds": JUPYTER},
            expose={
                "jupyter-ds": {
                    "port": "8888",
                    "clients": ["10.0.0.0/8", "192.168.1.0/24"],
                }
            },
        ),
        env(),
        ambassador=True,
        note="clients -> requires_network_policy; the wheel lacks the template",
    ),
    case(
        "stdnfs-overrides",
        app_request(
            "jupyter-ds",
            {"jupyter-ds": JUPYTER},
            settings={"NFS_CLAIM": "STDNFS_PVC", "HOME_BASE": "/mnt/{{ username }}"},
        ),
        env(
            STDNFS_PVC="nfs-home",
            PARENT_DIR="/mnt/nfs",
            SUBPATH_DIR="users/jdoe",
            SHARED_DIR="common",
        ),
        ambassador=True,
        note="STDNFS_PVC/PARENT_DIR/SUBPATH_DIR/SHARED_DIR; a setting containing "
        "'STDNFS_PVC' is replaced by the claim name",
    ),
    case(
        "create-home-dirs-false",
        app_request("jupyter-ds", {"jupyter-ds": JUPYTER}),
        env(CREATE_HOME_DIRS="false"),
        ambassador=True,
        note="only the whole-claim shared volume, no init container",
    ),
    case(
        "create-home-dirs-unset",
        app_request("jupyter-ds", {"jupyter-ds": JUPYTER}),
        env(CREATE_HOME_DIRS=None),
        ambassador=True,
        note="parse defaults CREATE_HOME_DIRS to true (home volumes) but System "
        "defaults it to false (no init container)",
    ),
    case(
        "create-home-dirs-odd-value",
        app_request("jupyter-ds", {"jupyter-ds": JUPYTER}),
        env(CREATE_HOME_DIRS="True"),
        ambassador=True,
        note="neither 'true' nor 'false' in parse: all three default volumes; "
        "lower()=='true' in System: init container",
    ),
    case(
        "init-container-disabled",
        app_request("jupyter-ds", {"jupyter-ds": JUPYTER}),
        env(TYCHO_APP_ENABLE_INIT_CONTAINER="false"),
        ambassador=True,
    ),
    case(
        "init-container-image-and-resources",
        app_request(
            "jupyter-ds",
            {"jupyter-ds": JUPYTER},
            security_context={
                "initRunAsUser": 0,
                "initRunAsGroup": 0,
                "runAsUser": 1000,
            },
        ),
        env(
            TYCHO_APP_INIT_IMAGE_REPOSITORY="registry.example.org/library/busybox",
            TYCHO_APP_INIT_IMAGE_TAG="1.36",
            TYCHO_APP_INIT_CPUS="100m",
            TYCHO_APP_INIT_MEMORY="64Mi",
        ),
        ambassador=True,
        note="init image/tag/resources; initRunAsUser 0 in compose is the string '0' "
        "(truthy); runAsGroup/fsGroup fall back to env defaults '0'",
    ),
    case(
        "run-as-env-switches",
        app_request(
            "rstudio-server",
            {"rstudio-server": RSTUDIO},
            expose={"rstudio-server": "8787"},
        ),
        env(
            TYCHO_APP_RUN_AS_USER="30000",
            TYCHO_APP_RUN_AS_GROUP="1136",
            TYCHO_APP_FS_GROUP="1136",
            INIT_SC_RUN_AS_USER="0",
            INIT_SC_RUN_AS_GROUP="1136",
        ),
        ambassador=True,
        note="no compose security_context: everything from TYCHO_APP_*/INIT_SC_*",
    ),
    case(
        "nfsrods-uid-irods",
        app_request(
            "jupyter-ds",
            {"jupyter-ds": JUPYTER},
            security_context={"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 100},
        ),
        env(
            NFSRODS_UID="40000",
            IROD_HOST="irods.example.org",
            NFSRODS_HOST="nfsrods.example.org",
        ),
        ambassador=True,
        note="NFSRODS_UID replaces the whole security context (no group/fsGroup); "
        "IROD_HOST adds the nfs volume from NFSRODS_HOST",
    ),
    case(
        "irods-without-nfsrods-host",
        app_request("jupyter-ds", {"jupyter-ds": JUPYTER}),
        env(IROD_HOST="irods.example.org"),
        ambassador=True,
        note="NFSRODS_HOST unset -> nfs server ''",
    ),
    case(
        "gitea-integration",
        app_request(
            "jupyter-ds",
            {"jupyter-ds": JUPYTER},
            gitea_integration=True,
            who=principal(username="jane_q.doe"),
        ),
        env(
            GITEA_HOST="gitea.example.org",
            GITEA_USER="git",
            GITEA_SERVICE_NAME="gitea-ssh.gitea.svc",
        ),
        ambassador=True,
        note="gitea secret volume (defaultMode 0600 -> 384), ssh config in init args, "
        "username with _ and . hyphenated in the secret name",
    ),
    case(
        "gitea-integration-defaults",
        app_request("jupyter-ds", {"jupyter-ds": JUPYTER}, gitea_integration=True),
        env(),
        ambassador=True,
        note="GITEA_* unset -> ' ' (a single space)",
    ),
    case(
        "principal-extra-container-env",
        app_request(
            "jupyter-ds",
            {"jupyter-ds": JUPYTER},
            who=principal(
                access_token="1234567890",
                refresh_token="true",
                extra_container_env={"FOO": "bar", "N": 1},
            ),
        ),
        env(),
        ambassador=True,
        note="principal keys become env values unquoted: a numeric token becomes "
        "an int, 'true' a bool, a dict a mapping",
    ),
    case(
        "principal-host-null-numeric-username",
        app_request(
            "nginx",
            {"nginx": NGINX},
            expose={"nginx": "80"},
            who=principal(username="12345", host=None),
        ),
        env(DEV_PHASE="test"),
        ambassador=False,
        note="HOST prints 'None'; a numeric username becomes an int label/env value",
    ),
    case(
        "username-label-edge",
        app_request(
            "jupyter-ds",
            {"jupyter-ds": JUPYTER},
            who=principal(username="J" + "ane.Q_doe-" * 6 + "x9"),
        ),
        env(),
        ambassador=True,
        note="a 63-character username of upper and lower case, '.', '_' and '-': a valid "
        "label value, labelled as itself (no slug, no annotation)",
    ),
    case(
        "settings-templating",
        app_request(
            "jupyter-ds",
            {
                "jupyter-ds": dict(
                    JUPYTER,
                    environment=[
                        "BASE_URL=/private/jupyter-ds/{{ username }}/{{ identifier }}",
                        "PORT={{ system_port }}",
                        "APP={{ system_name }}",
                    ],
                )
            },
            settings={
                "NB_USER": "{{ username }}",
                "WORKDIR": "/home/{{ username }}/work",
                "SESSION": "{{ identifier }}",
                "EMPTY": "",
            },
        ),
        env(),
        ambassador=True,
        note="Jinja in compose values and in settings; settings also gain identifier, "
        "username, system_name, system_port entries",
    ),
    case(
        "env-entries-equals-and-bare",
        app_request(
            "jupyter-ds",
            {
                "jupyter-ds": dict(
                    JUPYTER,
                    environment=["OPTS=-Xmx1g -Dfoo=bar", "BARE", "EMPTY=", "A=b=c"],
                )
            },
            settings={"JAVA_OPTS": "-Da=b"},
        ),
        env(),
        ambassador=True,
        note="entries are split on every '=': the value keeps only the 2nd piece; "
        "a bare name gets value ''",
    ),
    case(
        "env-as-env-key",
        app_request(
            "jupyter-ds",
            {
                "jupyter-ds": dict(
                    {k: v for k, v in JUPYTER.items() if k != "environment"},
                    env=["FROM_ENV_KEY=1"],
                )
            },
        ),
        env(),
        ambassador=True,
        note="compose 'env' list is read before 'environment'",
    ),
    case(
        "environment-as-dict",
        app_request(
            "jupyter-ds",
            {
                "jupyter-ds": dict(
                    JUPYTER,
                    environment={"JUPYTER_ENABLE_LAB": "yes", "NB_USER": "jdoe"},
                )
            },
        ),
        env(),
        ambassador=True,
        expect_error=True,
        note="dict environment: the original adds a dict to a list (TypeError)",
    ),
    case(
        "entrypoint-list-quotes",
        app_request(
            "nginx",
            {
                "nginx": dict(
                    NGINX,
                    entrypoint=[
                        "/bin/sh",
                        "-c",
                        "echo it's: fine && nginx -g 'daemon off;'",
                    ],
                )
            },
            expose={"nginx": "80"},
        ),
        env(),
        ambassador=True,
        note="command printed as a Python list repr, re-read as a YAML flow sequence",
    ),
    case(
        "ports-multiple-and-host-ip",
        app_request(
            "nginx",
            {
                "nginx": dict(
                    NGINX,
                    ports=["127.0.0.1:8080:80", "8443:443", "9000"],
                    expose=["80", "443"],
                )
            },
            expose={"nginx": "8080"},
        ),
        env(),
        ambassador=False,
        note="ip:host:container keeps the host port (split(':')[1]); several ports -> "
        "port-1, port-2, port-3",
    ),
    case(
        "resources-limit-shapes",
        app_request(
            "jupyter-ds",
            {
                "jupyter-ds": dict(
                    JUPYTER,
                    deploy={
                        "resources": {
                            "limits": {"cpus": 0.25, "ephemeralStorage": "2Gi"},
                            "reservations": {
                                "memory": "1G",
                                "gpus": 2,
                                "ephemeralStorage": "",
                            },
                        }
                    },
                )
            },
        ),
        env(),
        ambassador=True,
        note="cpus without memory -> memory 'None'; memory without cpus is dropped; "
        "gpus only in reservations",
    ),
    case(
        "resources-reservations-only",
        app_request(
            "jupyter-ds",
            {
                "jupyter-ds": dict(
                    JUPYTER,
                    deploy={
                        "resources": {
                            "reservations": {"cpus": "500m", "memory": "512Mi"}
                        }
                    },
                )
            },
        ),
        env(),
        ambassador=True,
        note="empty limits object -> 'limits:' null",
    ),
    case(
        "proxy-rewrite-rule",
        app_request(
            "jupyter-ds",
            {"jupyter-ds": dict(JUPYTER, proxy_rewrite_rule=True)},
            proxy_rewrite={"enabled": False, "target": "/rewritten"},
            conn_string="lab",
        ),
        env(),
        ambassador=True,
        note="proxy_rewrite_rule forces enabled; target set",
    ),
    case(
        "env-secret-appended",
        app_request(
            "jupyter-ds",
            {"jupyter-ds": dict(JUPYTER, environment=["JUPYTER_ENABLE_LAB=yes"])},
        ),
        env(),
        ambassador=True,
        env_secret={"API_KEY": "k-{{ JUPYTER_ENABLE_LAB }}", "PLAIN": "value"},
        note="'<app>-env' Secret values are rendered with the container env as context",
    ),
    case(
        "env-secret-with-long-env-entry",
        app_request(
            "jupyter-ds",
            {"jupyter-ds": dict(JUPYTER, environment=["OPTS=a=b"])},
        ),
        env(),
        ambassador=True,
        env_secret={"API_KEY": "k"},
        expect_error=True,
        note="render_string(value, container.env) turns the env list into a dict: an "
        "entry split into 3 pieces breaks it",
    ),
    case(
        "username-with-dot-underscore-loadbalancer",
        app_request(
            "rstudio-server",
            {"rstudio-server": RSTUDIO},
            expose={"rstudio-server": "8787"},
            who=principal(username="mary.o_neil"),
        ),
        env(SUBPATH_DIR=None),
        ambassador=False,
        note="SUBPATH_DIR defaults to the username",
    ),
    # ----------------------------------------------------------- bad input
    case(
        "bad-missing-image",
        app_request(
            "jupyter-ds",
            {"jupyter-ds": {k: v for k, v in JUPYTER.items() if k != "image"}},
        ),
        env(),
        expect_error=True,
        note="KeyError 'image'",
    ),
    case(
        "bad-volume-not-pvc",
        app_request(
            "jupyter-ds", {"jupyter-ds": dict(JUPYTER, volumes=["/srv/data:/data"])}
        ),
        env(),
        expect_error=True,
    ),
    case(
        "bad-volume-pvc-no-slashes",
        app_request(
            "jupyter-ds", {"jupyter-ds": dict(JUPYTER, volumes=["pvc:claim:/data"])}
        ),
        env(),
        expect_error=True,
    ),
    case(
        "bad-client-cidr",
        app_request(
            "jupyter-ds",
            {"jupyter-ds": JUPYTER},
            expose={"jupyter-ds": {"port": "8888", "clients": ["not-a-cidr"]}},
        ),
        env(),
        expect_error=True,
    ),
    case(
        "bad-client-cidr-host-bits",
        app_request(
            "jupyter-ds",
            {"jupyter-ds": JUPYTER},
            expose={"jupyter-ds": {"port": "8888", "clients": ["10.1.2.3/8"]}},
        ),
        env(),
        expect_error=True,
        note="ipaddress.ip_network is strict",
    ),
    case(
        "bad-port-int",
        app_request(
            "nginx", {"nginx": dict(NGINX, ports=[80])}, expose={"nginx": "80"}
        ),
        env(),
        expect_error=True,
        note="an unquoted compose port is an int: \"':' in p\" fails",
    ),
    case(
        "bad-no-ports-at-all",
        app_request(
            "worker",
            {"worker": {"image": "busybox:1.36", "entrypoint": "sleep infinity"}},
            expose={},
        ),
        env(),
        expect_error=True,
        note="no ports anywhere: system_port defaults to the int 8000 and the "
        "'STDNFS_PVC' in value check fails on it",
    ),
    case(
        "bad-setting-not-string",
        app_request("jupyter-ds", {"jupyter-ds": JUPYTER}, settings={"WORKERS": 4}),
        env(),
        expect_error=True,
        note="non-string settings value fails the 'STDNFS_PVC' in value check",
    ),
    case(
        "bad-env-null",
        dict(app_request("jupyter-ds", {"jupyter-ds": JUPYTER}), env=None),
        env(),
        expect_error=True,
        note="env null skips templating, then iterating None fails",
    ),
    case(
        "bad-probe-k8s-field-names",
        app_request(
            "jupyter-ds",
            {"jupyter-ds": JUPYTER},
            ext={
                "kube": {
                    "livenessProbe": {
                        "httpGet": {"path": "/", "port": 8888},
                        "initialDelaySeconds": 10,
                    }
                }
            },
        ),
        env(),
        expect_error=True,
        note="Probe takes delay/period/threshold, not Kubernetes names",
    ),
    case(
        "bad-setting-with-double-quote",
        app_request(
            "jupyter-ds", {"jupyter-ds": JUPYTER}, settings={"GREETING": 'say "hi"'}
        ),
        env(),
        expect_error=True,
        note="env values are pasted into a double-quoted YAML scalar",
    ),
    case(
        "bad-principal-not-json",
        dict(app_request("jupyter-ds", {"jupyter-ds": JUPYTER}), principal="jdoe"),
        env(),
        expect_error=True,
    ),
]

_names = [c["name"] for c in CASES]
assert len(_names) == len(set(_names)), "case names must be unique"
