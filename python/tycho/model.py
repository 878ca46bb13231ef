"""The system model: a docker-compose system as containers, services and volumes.

``System.parse`` delegates to the native core (``tycho._native.parse_system``), which
renders the compose file with the request's environment and applies every environment
switch of tycho-api 1.17.3 (DEV_PHASE, CREATE_HOME_DIRS, STDNFS_PVC, NFSRODS_UID,
TYCHO_APP_* ...). The classes keep the original constructors so callers can build
models directly; ``to_dict()`` gives the plain form templates are rendered with.
"""

import json
import logging
import uuid
from typing import Any, Mapping, Optional, Sequence, Union

from tycho import _native
from tycho.config import Config
from tycho.exceptions import TychoException
from tycho.tycho_utils import Documents, TemplateUtils, _PlainContext, _TemplateNotFound, _too_deep, to_json, to_plain

logger = logging.getLogger(__name__)

_Config = Union[Config, dict[str, Any]]

__all__ = [
    "Limits",
    "Volumes",
    "Probe",
    "HttpProbe",
    "TcpProbe",
    "Container",
    "System",
    "ModifySystem",
    "Service",
]

def _text(value: Any, field: str) -> str:
    """``str(value)`` of a user's value; one nested too deep for ``str`` (RecursionError)
    is a TychoException naming ``field``."""
    try:
        return str(value)
    except RecursionError:
        raise _too_deep(field, []) from None


def _public_attrs(obj, skip=()):
    return {k: to_plain(v) for k, v in vars(obj).items() if not k.startswith("_") and k not in skip}


def _config_mapping(config):
    return getattr(config, "conf", config)


class Limits:
    """Resource limits (or requests) of a container."""

    def __init__(self, cpus: Any=None, gpus: Any=None, memory: Any=None, ephemeralStorage: Any=None) -> None:
        """
        :param cpus: Number of CPUs; may be a fraction.
        :param gpus: Number of GPUs.
        :param memory: Amount of memory, e.g. ``"512M"``.
        :param ephemeralStorage: Amount of ephemeral storage.
        """
        self.cpus = cpus
        self.gpus = gpus
        self.memory = memory
        self.ephemeralStorage = ephemeralStorage

    def to_dict(self) -> dict[str, Any]:
        return _public_attrs(self)

    def __repr__(self):
        return f"cpus:{self.cpus} gpus:{self.gpus} mem:{self.memory} ephemeralStorage:{self.ephemeralStorage}"


class Volumes:
    """Volume mounts of a system's containers, from ``pvc://<claim>[/<subpath>]:<path>[:ro|rw]``."""

    def __init__(self, id: Any, containers: Sequence[Any]) -> None:
        self.id = id
        self.containers = containers
        self.volumes: list[dict[str, Any]] = []
        self.pvcs: list[str] = []

    def volume(self, container_name: str, pvc_name: Optional[str], volume_name: str, path: Optional[str]=None, subpath: Optional[str]=None, read_only: bool=False) -> None:
        self.volumes.append(
            {
                "container_name": container_name,
                "pvc_name": pvc_name,
                "volume_name": volume_name,
                "path": path,
                "subpath": subpath,
                "read_only": read_only,
            }
        )

    def process_volumes(self) -> list[dict[str, Any]]:
        """Parse every container's ``volumes`` into :attr:`volumes` and return it.

        ``pvc_name`` is set on a claim's first mount only (None on later ones). The rule
        is the core's (``tycho._native.model_volumes``, the one ``System.parse`` uses): a
        mount that is not ``pvc://<claim>[/<subpath>]:<path>[:ro|rw]`` with a valid claim
        name and a mount path raises :class:`tycho.exceptions.TychoException`.
        """
        mounts: list[tuple[str, list[str]]] = []
        for container in self.containers:
            if isinstance(container, dict):
                name, specs = container["name"], container.get("volumes")
            else:
                name, specs = container.name, container.volumes
            field = f"containers.{_text(name, 'containers.name')}.volumes"
            mounts.append((_text(name, "containers.name"), [_text(v, field) for v in specs or []]))
        try:
            volumes = _native.model_volumes(mounts)
        except TychoException as e:
            raise _wrong_volume(mounts, e) from e
        for volume in volumes:
            self.pvcs.append(volume["volume_name"])
            self.volume(**volume)
        return self.volumes


class _InvalidValue(TychoException, ValueError):
    """A value the core's model rules refuse: a TychoException that is also the
    ValueError the original raised."""


def _wrong_volume(mounts: list[tuple[str, list[str]]], error: TychoException) -> TychoException:
    """The original's message for the first mount the core refuses, with the core's reason."""
    for name, specs in mounts:
        for spec in specs:
            try:
                _native.model_volumes([(name, [spec])])
            except TychoException as e:
                return TychoException(f"Wrong Volume definition in Container:{name} and Volume:{spec}: {e.message}")
    return error


class Probe:
    """A liveness or readiness probe running a command."""

    def __init__(self, cmd: Any=None, delay: Any=None, period: Any=None, threshold: Any=None) -> None:
        self.cmd = cmd
        self.delay = delay
        self.period = period
        self.threshold = threshold

    def to_dict(self) -> dict[str, Any]:
        return _public_attrs(self)


class HttpProbe(Probe):
    """A probe issuing an HTTP GET (``httpGet``: path, port, httpHeaders)."""

    def __init__(self, delay: Any=None, period: Any=None, threshold: Any=None, httpGet: Optional[Mapping[str, Any]]=None) -> None:
        Probe.__init__(self, None, delay, period, threshold)
        if httpGet is not None:
            self.path = httpGet.get("path", "/")
            self.port = httpGet.get("port", 80)
            self.httpHeaders = httpGet.get("httpHeaders", None)


class TcpProbe(Probe):
    """A probe opening a TCP connection (``tcpSocket``: port)."""

    def __init__(self, delay: Any=None, period: Any=None, threshold: Any=None, tcpSocket: Optional[Mapping[str, Any]]=None) -> None:
        Probe.__init__(self, None, delay, period, threshold)
        if tcpSocket is not None:
            self.port = tcpSocket.get("port", None)


def _make_probe(spec):
    """A probe object from the compose ``ext.kube`` form (or a probe object)."""
    if spec is None or isinstance(spec, Probe):
        return spec
    if spec.get("httpGet") is not None:
        return HttpProbe(**spec)
    if spec.get("tcpSocket") is not None:
        return TcpProbe(**spec)
    return Probe(**spec)


def _probe_from_plain(d):
    """A probe object from the plain (model) form produced by the native core."""
    if d is None:
        return None
    timing = {k: d.get(k) for k in ("delay", "period", "threshold")}
    probe: Probe
    if "path" in d or "httpHeaders" in d:
        probe = HttpProbe(**timing, httpGet={"path": d.get("path"), "port": d.get("port"),
                                             "httpHeaders": d.get("httpHeaders")})
    elif "port" in d:
        probe = TcpProbe(**timing, tcpSocket={"port": d.get("port")})
    else:
        probe = Probe(cmd=d.get("cmd"), **timing)
    for k, v in d.items():
        if not hasattr(probe, k):
            setattr(probe, k, v)
    return probe


def _split_env(entry):
    if isinstance(entry, (list, tuple)):
        return [_text(v, "env") for v in entry]
    key, sep, value = _text(entry, "env").partition("=")
    return [key, value] if sep else [key]


class Container:
    """Invocation of an image in a specific infrastructural context."""

    def __init__(
        self,
        name: str,
        image: str,
        command: Any=None,
        env: Optional[Sequence[Any]]=None,
        identity: Any=None,
        limits: Any=None,
        requests: Any=None,
        ports: Sequence[Mapping[str, Any]]=[],
        expose: Sequence[Mapping[str, Any]]=[],
        depends_on: Any=None,
        volumes: Optional[Sequence[str]]=None,
        liveness_probe: Optional[Mapping[str, Any]]=None,
        readiness_probe: Optional[Mapping[str, Any]]=None,
    ) -> None:
        """
        :param name: Name the running container will be given.
        :param image: Name of the image to use.
        :param command: The command to run (list of words).
        :param env: ``"NAME=value"`` strings (or ``[name, value]`` pairs).
        :param identity: UID of the user to run as.
        :param limits: Resource limits (dict or :class:`Limits`).
        :param requests: Resource requests (dict or :class:`Limits`).
        :param ports: Container ports, ``[{"containerPort": p}]``.
        :param expose: Exposed ports, same form.
        :param volumes: Mounts ``pvc://<claim>[/<subpath>]:<path>``.
        :param liveness_probe: Probe spec (``cmd``/``httpGet``/``tcpSocket`` + timing).
        :param readiness_probe: Probe spec.
        """
        self.name = name
        self.image = image
        self.identity = identity
        self.limits = Limits(**limits) if isinstance(limits, dict) else limits
        self.requests = Limits(**requests) if isinstance(requests, dict) else requests
        if isinstance(self.limits, list):
            self.limits = self.limits[0] if self.limits else None
        self.ports = list(ports) if ports is not None else []
        self.expose = list(expose) if expose is not None else []
        self.depends_on = depends_on
        self.command = command
        # Split at the first "=" only: a value may itself contain "=".
        self.env = [_split_env(v) for v in env] if env else []
        self.volumes = volumes
        # Unlike tycho-api 1.17.3 (attribute absent), a missing probe is None.
        self.liveness_probe = _make_probe(liveness_probe)
        self.readiness_probe = _make_probe(readiness_probe)

    @classmethod
    def _from_plain(cls, d):
        c = cls.__new__(cls)
        c.__dict__.update(d)
        c.limits = Limits(**d["limits"]) if isinstance(d.get("limits"), dict) else d.get("limits")
        c.requests = Limits(**d["requests"]) if isinstance(d.get("requests"), dict) else d.get("requests")
        c.liveness_probe = _probe_from_plain(d.get("liveness_probe"))
        c.readiness_probe = _probe_from_plain(d.get("readiness_probe"))
        return c

    def to_dict(self) -> dict[str, Any]:
        return _public_attrs(self)

    def __repr__(self):
        return f"name:{self.name} image:{self.image} id:{self.identity} limits:{self.limits}"


def _defaults() -> dict[str, Any]:
    """The model's environment switches with the original's defaults, read by the core
    (``tycho._native.model_defaults``) at each call, as the original read ``os.environ``."""
    return _native.model_defaults()


def _security_context(sc_from_registry, registry_keys, switch_keys):
    """Each model key from the registry's ``securityContext`` (as a string), else from
    its environment switch (``tycho._native.model_defaults``)."""
    sc = sc_from_registry or {}
    switches = _defaults()
    context = {}
    for key, registry_key in registry_keys.items():
        context[key] = _text(sc.get(registry_key), registry_key) if registry_key in sc else switches[switch_keys[key]]
    return context


class System:
    """Distributed system of interacting containerized software."""

    #: Behind ``source_text``: the text, None, or "dump when first read".
    _source_text: Any

    def __init__(
        self,
        config: _Config,
        name: str,
        principal: Mapping[str, Any],
        service_account: Optional[str],
        conn_string: str,
        proxy_rewrite: Any,
        containers: Sequence[Union[Container, Mapping[str, Any]]],
        identifier: str,
        gitea_integration: Any,
        services: Mapping[str, Any]={},
        security_context: Mapping[str, Any]={},
        init_security_context: Mapping[str, Any]={},
    ) -> None:
        """Build a system model directly (``System.parse`` is the usual way).

        :param config: Configuration (:class:`tycho.config.Config` or dict).
        :param name: Name of the system (the app id).
        :param principal: Dict of the principal (username, host, tokens ...).
        :param containers: Container objects or dicts of Container arguments.
        :param identifier: The system's GUID.
        :param services: ``{container_name: {"port": p, "clients": [cidr...]}}``.
        """
        if not containers or any(c is None for c in containers):
            raise AssertionError("System container elements may not be null.")
        self.config = config
        self.identifier = identifier
        self.system_name = name
        self.app_id = name
        self.amb = False
        self.irods_enabled = False
        self.nfrods_uid = ""
        switches = _defaults()
        self.dev_phase = switches["dev_phase"]
        self.name = f"{name}-{self.identifier}"
        self.containers = [Container(**c) if isinstance(c, dict) else c for c in containers]
        self.services = {}
        for service_name, service_def in (services or {}).items():
            service = service_def if isinstance(service_def, Service) else Service(**service_def)
            service.name = f"{service_name}-{self.identifier}"
            service.name_noid = service_name
            self.services[service_name] = service
        self.volumes = Volumes(self.identifier, containers).process_volumes()
        self.source_text = None
        self.system_port = None
        self.ambassador_id = switches["ambassador_id"]
        principal_env = dict(principal or {})
        extra = principal_env.pop("extra_container_env", None) or {}
        self.system_env = principal_env
        self.extra_env = []
        for k, v in extra.items():
            name = _text(k, "extra_container_env")
            self.extra_env.append([name, "" if v is None else _text(v, f"extra_container_env.{name}")])
        self.username = principal_env.get("username")
        self.username_all_hyphens = _text(self.username, "principal.username").replace("_", "-").replace(".", "-")
        self.host = principal_env.get("host")
        self.annotations: dict[str, Any] = {}
        self.namespace = "default"
        self.serviceaccount = service_account
        self.enable_init_container = switches["enable_init_container"]
        self.conn_string = conn_string
        self.create_home_dirs = switches["create_home_dirs"]
        self.stdnfs_pvc = switches["stdnfs_pvc"]
        self.parent_dir = switches["parent_dir"]
        subpath_dir = switches["subpath_dir"]
        self.subpath_dir = self.username if subpath_dir is None else subpath_dir
        self.shared_dir = switches["shared_dir"]
        defaults = (config.get("tycho") or {})["compute"]["system"]["defaults"]["securityContext"]
        self.default_run_as_user = defaults.get("uid", "1000")
        self.default_run_as_group = defaults.get("gid", "1000")
        # NFSRODS_UID replaces the security context (the core's rule).
        imposed = switches["nfsrods_security_context"]
        self.security_context: Mapping[str, Any] = security_context if imposed is None else imposed
        self.init_security_context = init_security_context
        self.init_image_repository = switches["init_image_repository"]
        self.init_image_tag = switches["init_image_tag"]
        self.init_cpus = switches["init_cpus"]
        self.init_memory = switches["init_memory"]
        self.gpu_resource_name = switches["gpu_resource_name"]
        self.proxy_rewrite = proxy_rewrite
        if switches["nfsrods_host_if_enabled"] is not None:
            self.irods_enabled = True
            self.nfsrods_host = switches["nfsrods_host_if_enabled"]
        self.gitea_integration = gitea_integration
        self.gitea_host = switches["gitea_host"]
        self.gitea_user = switches["gitea_user"]
        self.gitea_service_name = switches["gitea_service_name"]

    # ------------------------------------------------------------------ construction

    @classmethod
    def _from_plain(cls, config, d):
        """A System from the plain model produced by ``tycho._native.parse_system``."""
        system = cls.__new__(cls)
        system.config = config
        system.__dict__.update(d)
        system.containers = [Container._from_plain(c) for c in d.get("containers", [])]
        system.services = {k: Service._from_plain(v) for k, v in (d.get("services") or {}).items()}
        system.source_text = None
        return system

    @staticmethod
    def set_security_context(sc_from_registry: Optional[Mapping[str, Any]]) -> dict[str, Any]:
        """Pod security context (run_as_user/run_as_group/fs_group, strings) from a
        registry ``securityContext``, falling back to TYCHO_APP_RUN_AS_USER/GROUP and
        TYCHO_APP_FS_GROUP (default ``"0"``)."""
        return _security_context(
            sc_from_registry,
            {"run_as_user": "runAsUser", "run_as_group": "runAsGroup", "fs_group": "fsGroup"},
            {"run_as_user": "run_as_user", "run_as_group": "run_as_group", "fs_group": "fs_group"},
        )

    @staticmethod
    def set_init_security_context(sc_from_registry: Optional[Mapping[str, Any]]) -> dict[str, Any]:
        """Init container security context from ``initRunAsUser``/``initRunAsGroup``,
        falling back to INIT_SC_RUN_AS_USER/GROUP (default ``"0"``)."""
        return _security_context(
            sc_from_registry,
            {"run_as_user": "initRunAsUser", "run_as_group": "initRunAsGroup"},
            {"run_as_user": "init_run_as_user", "run_as_group": "init_run_as_group"},
        )

    def _get_ambassador_id(self):
        return _defaults()["ambassador_id"]

    @staticmethod
    def get_identifier() -> str:
        """A new system GUID (32 hex digits)."""
        return uuid.uuid4().hex

    def _get_init_resources(self):
        return (self.config.get("tycho") or {})["compute"]["system"]["defaults"]["services"]["init"]["resources"]

    def get_namespace(self, namespace: str="default") -> str:
        """The pod's namespace from the service account mount, else ``namespace``."""
        return _native.environment_namespace(None, variable=False) or namespace

    def requires_network_policy(self) -> bool:
        """True when any service restricts its clients."""
        return any(len(svc.clients or []) > 0 for svc in self.services.values())

    def to_dict(self) -> dict[str, Any]:
        """The plain model (what templates see as ``system``); ``config`` is left out."""
        return _public_attrs(self, skip=("config",))

    def __json__(self) -> dict[str, Any]:
        return self.to_dict()

    def render(self, template: str, context: Mapping[str, Any]={}) -> Documents:
        """Render template ``template`` (e.g. ``"pod.yaml"``) with this system as
        ``system`` plus ``context``; returns the list of YAML documents."""
        if type(self) is not System or "system" in (context or {}):
            # A subclass may convert itself otherwise; a context may replace ``system``.
            final_context = _PlainContext({"system": self.to_dict()})
            final_context.update({k: to_plain(v) for k, v in (context or {}).items()})
            documents = TemplateUtils(config=self.config).render(template, context=final_context)
        else:
            # The model converted in one native pass (what to_dict gives), no Python recursion.
            documents = _render_model(template, self, dict(context or {}), _config_mapping(self.config))
        logger.debug("--generated template: %s", documents)
        return documents

    @staticmethod
    def env_from_components(spec: Mapping[str, Any], env: Optional[Mapping[str, Any]]) -> list[str]:
        """The compose service's ``env``/``environment`` list plus ``KEY=value`` for each
        registry setting (values rendered as templates with ``env``; a value naming
        STDNFS_PVC becomes that variable's value)."""
        from_spec = list(spec.get("env", []) or spec.get("environment", []) or [])
        from_registry = []
        for key, value in (env or {}).items():
            name = _text(key, "env")
            text = _text(value, f"env.{name}")
            if "STDNFS_PVC" in text:
                from_registry.append(f"{name}={_defaults()['stdnfs_pvc_variable']}")
            else:
                from_registry.append(TemplateUtils.render_string(f"{name}={text}", env or {}))
        return from_spec + from_registry

    @staticmethod
    def parse(config: _Config, name: str, principal: Union[str, Mapping[str, Any], None], system: Mapping[str, Any], service_account: Optional[str], env: Optional[dict[str, Any]]={}, services: Optional[Mapping[str, Any]]={}, count: Optional[int]=None) -> "System":
        """Build a system model from a start request's parts.

        :param config: Configuration (Config or dict).
        :param name: Name of the system (app id).
        :param principal: The principal as a JSON string (or a dict).
        :param system: Parsed docker-compose specification.
        :param service_account: Kubernetes service account or None.
        :param env: Settings substituted into the compose file.
        :param services: Networking rules per container.
        :param count: The registry's count of the app (how many instances a user may run;
                      enforced under ``tycho.policy.enforce_count``). Not in the original.
        """
        if isinstance(principal, dict):
            principal = to_json(principal, what="principal")
        request: dict[str, Any] = {
            "name": name,
            "principal": principal,
            "serviceaccount": service_account,
            "env": env,  # None: no templating pass, as the original
            "system": system,
            "services": services if services is not None else {},
        }
        if count is not None:
            request["count"] = count
        # The request's values are converted as to_plain would, natively.
        plain = _native.parse_system(request, config=_config_mapping(config), to_plain=to_plain)
        model = System._from_plain(config, plain)
        model._source_text = _DUMP_ON_READ  # the model as YAML, made when first read
        return model

    @property
    def source_text(self) -> Optional[str]:
        """The parsed system as YAML text (None for a system built directly)."""
        text = self.__dict__.get("_source_text")
        if text is _DUMP_ON_READ:
            text = self._source_text = _native.yaml_dump_all([self.to_dict()])
        return text

    @source_text.setter
    def source_text(self, value: Optional[str]) -> None:
        self._source_text = value

    def __repr__(self):
        return f"name:{self.name} containers:{self.containers}"


#: ``System.source_text`` of a parsed system before it is first read.
_DUMP_ON_READ: Any = object()


class ModifySystem:
    """Metadata and resources to change on a running system.

    :param config: Tycho configuration.
    :param patch: Whether anything is to be changed.
    :param guid: The system's GUID.
    :param labels: Labels to set on the system's deployments and pods.
    :param resources: ``{"cpu": ..., "memory": ...}`` for every container.
    """

    def __init__(self, config: Any, patch: bool, guid: Optional[str], labels: dict[str, Any], resources: dict[str, Any]) -> None:
        self.config = config
        self.patch = patch
        self.guid = guid
        self.labels = labels
        self.resources = resources
        self.containers: list[Container] = []

    @staticmethod
    def parse_modify(config: Any, guid: Optional[str], labels: Optional[dict[str, Any]], cpu: Any, memory: Any) -> "ModifySystem":
        """A ModifySystem; ``patch`` is True when labels or resources are given. The rule
        is the core's, that of a modify request (``tycho._native.modify_model``): a None
        ``cpu``/``memory`` is left out of ``resources``, None ``labels`` are ``{}``."""
        model = _native.modify_model({"tycho-guid": guid, "labels": labels, "cpu": cpu, "memory": memory})
        return ModifySystem(config, model["patch"], model["guid"], model["labels"], model["resources"])

    def to_dict(self) -> dict[str, Any]:
        return _public_attrs(self, skip=("config",))

    def __repr__(self):
        return f"name: {self.guid} labels: {self.labels} resources: {self.resources}"


class Service:
    """Network connectivity rules of one container."""

    def __init__(self, port: Any=None, clients: Sequence[str]=[]) -> None:
        """
        :param port: The port to expose.
        :param clients: CIDRs allowed to connect (normalised; invalid ones raise ValueError).
        """
        self.port = port
        # The core's CIDR rule (System.parse uses it too); a bad client raises TychoException.
        try:
            self.clients = [_native.client_network("service", c) for c in (clients or [])]
        except TychoException as e:
            raise _InvalidValue(e.message) from e
        self.name: Optional[str] = None
        self.name_noid: Optional[str] = None

    @classmethod
    def _from_plain(cls, d):
        service = cls.__new__(cls)
        service.port = d.get("port")
        service.clients = list(d.get("clients") or [])
        service.name = d.get("name")
        service.name_noid = d.get("name_noid")
        return service

    def to_dict(self) -> dict[str, Any]:
        return _public_attrs(self)

    def __repr__(self):
        return json.dumps(f"service: {json.dumps({'port': self.port, 'clients': self.clients}, indent=2)}")


#: The model classes whose ``to_dict`` is their public attributes less these names:
#: ``System.render`` converts them natively (``tycho._native.render_model``); any other
#: object in the model (a subclass, a user's value) goes through :func:`to_plain`.
_PLAIN_SKIP: dict[type, tuple[str, ...]] = {
    Limits: (), Probe: (), HttpProbe: (), TcpProbe: (), Container: (), Service: (),
    System: ("config",), ModifySystem: ("config",),
}


#: The keyword arguments with which a native operation takes a model object itself
#: (``tycho._native.kube_start(system, **_NATIVE_MODEL)`` and the others): converted in
#: that one call as its ``to_dict()`` gives it (the model classes natively, anything
#: else by the core's :func:`to_plain` walk), so the call is the only crossing.
_NATIVE_MODEL: dict[str, Any] = {"skip": _PLAIN_SKIP, "to_plain": to_plain}


def _render_model(template: str, system: "System", extra: dict[str, Any], config: Any) -> Documents:
    """``TemplateUtils.render`` of ``template`` with ``system`` converted natively."""
    logger.debug("applying template %s", template)
    try:
        documents = _native.render_model(template, system, extra, _PLAIN_SKIP, to_plain, config=config)
    except TychoException as e:
        if str(e).startswith("no template "):
            raise _TemplateNotFound(str(e)) from None
        raise
    return Documents(documents)
