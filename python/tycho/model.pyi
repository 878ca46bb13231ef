from typing import Any, Mapping, Optional, Sequence, Union

from tycho.config import Config
from tycho.tycho_utils import Documents

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

_Config = Union[Config, dict[str, Any]]

class Limits:
    cpus: Any
    gpus: Any
    memory: Any
    ephemeralStorage: Any
    def __init__(self, cpus: Any = ..., gpus: Any = ..., memory: Any = ..., ephemeralStorage: Any = ...) -> None: ...
    def to_dict(self) -> dict[str, Any]: ...

class Volumes:
    id: Any
    containers: Sequence[Any]
    volumes: list[dict[str, Any]]
    pvcs: list[str]
    def __init__(self, id: Any, containers: Sequence[Any]) -> None: ...
    def volume(
        self,
        container_name: str,
        pvc_name: Optional[str],
        volume_name: str,
        path: Optional[str] = ...,
        subpath: Optional[str] = ...,
        read_only: bool = ...,
    ) -> None: ...
    def process_volumes(self) -> list[dict[str, Any]]: ...

class Probe:
    cmd: Any
    delay: Any
    period: Any
    threshold: Any
    def __init__(self, cmd: Any = ..., delay: Any = ..., period: Any = ..., threshold: Any = ...) -> None: ...
    def to_dict(self) -> dict[str, Any]: ...

class HttpProbe(Probe):
    path: Any
    port: Any
    httpHeaders: Any
    def __init__(
        self, delay: Any = ..., period: Any = ..., threshold: Any = ..., httpGet: Optional[Mapping[str, Any]] = ...
    ) -> None: ...

class TcpProbe(Probe):
    port: Any
    def __init__(
        self, delay: Any = ..., period: Any = ..., threshold: Any = ..., tcpSocket: Optional[Mapping[str, Any]] = ...
    ) -> None: ...

class Container:
    name: str
    image: str
    identity: Any
    limits: Optional[Limits]
    requests: Optional[Limits]
    ports: list[dict[str, Any]]
    expose: list[dict[str, Any]]
    depends_on: Any
    command: Any
    env: list[list[str]]
    volumes: Optional[list[str]]
    liveness_probe: Optional[Probe]
    readiness_probe: Optional[Probe]
    def __init__(
        self,
        name: str,
        image: str,
        command: Any = ...,
        env: Optional[Sequence[Any]] = ...,
        identity: Any = ...,
        limits: Any = ...,
        requests: Any = ...,
        ports: Sequence[Mapping[str, Any]] = ...,
        expose: Sequence[Mapping[str, Any]] = ...,
        depends_on: Any = ...,
        volumes: Optional[Sequence[str]] = ...,
        liveness_probe: Optional[Mapping[str, Any]] = ...,
        readiness_probe: Optional[Mapping[str, Any]] = ...,
    ) -> None: ...
    def to_dict(self) -> dict[str, Any]: ...

class System:
    config: Any
    identifier: str
    system_name: str
    app_id: str
    amb: bool
    irods_enabled: bool
    nfrods_uid: str
    nfsrods_host: str
    dev_phase: str
    name: str
    containers: list[Container]
    services: dict[str, Service]
    volumes: list[dict[str, Any]]
    source_text: Optional[str]
    system_port: Any
    ambassador_id: str
    system_env: dict[str, Any]
    extra_env: list[list[str]]
    username: Any
    username_all_hyphens: str
    host: Any
    annotations: dict[str, Any]
    namespace: str
    serviceaccount: Optional[str]
    enable_init_container: str
    conn_string: str
    create_home_dirs: str
    stdnfs_pvc: str
    parent_dir: str
    subpath_dir: Any
    shared_dir: str
    default_run_as_user: Any
    default_run_as_group: Any
    security_context: dict[str, Any]
    init_security_context: dict[str, Any]
    init_image_repository: str
    init_image_tag: str
    init_cpus: str
    init_memory: str
    gpu_resource_name: str
    proxy_rewrite: Any
    gitea_integration: Any
    gitea_host: str
    gitea_user: str
    gitea_service_name: str
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
        services: Mapping[str, Any] = ...,
        security_context: Mapping[str, Any] = ...,
        init_security_context: Mapping[str, Any] = ...,
    ) -> None: ...
    @staticmethod
    def set_security_context(sc_from_registry: Optional[Mapping[str, Any]]) -> dict[str, Any]: ...
    @staticmethod
    def set_init_security_context(sc_from_registry: Optional[Mapping[str, Any]]) -> dict[str, Any]: ...
    @staticmethod
    def get_identifier() -> str: ...
    def get_namespace(self, namespace: str = ...) -> str: ...
    def requires_network_policy(self) -> bool: ...
    def to_dict(self) -> dict[str, Any]: ...
    def __json__(self) -> dict[str, Any]: ...
    def render(self, template: str, context: Mapping[str, Any] = ...) -> Documents: ...
    @staticmethod
    def env_from_components(spec: Mapping[str, Any], env: Optional[Mapping[str, Any]]) -> list[str]: ...
    @staticmethod
    def parse(
        config: _Config,
        name: str,
        principal: Union[str, Mapping[str, Any], None],
        system: Mapping[str, Any],
        service_account: Optional[str],
        env: Optional[dict[str, Any]] = ...,
        services: Optional[Mapping[str, Any]] = ...,
    ) -> System: ...

class ModifySystem:
    config: Any
    patch: bool
    guid: Optional[str]
    labels: dict[str, Any]
    resources: dict[str, Any]
    containers: list[Any]
    def __init__(
        self, config: Any, patch: bool, guid: Optional[str], labels: dict[str, Any], resources: dict[str, Any]
    ) -> None: ...
    @staticmethod
    def parse_modify(
        config: Any, guid: Optional[str], labels: Optional[dict[str, Any]], cpu: Any, memory: Any
    ) -> ModifySystem: ...
    def to_dict(self) -> dict[str, Any]: ...

class Service:
    port: Any
    clients: list[str]
    name: Optional[str]
    name_noid: Optional[str]
    def __init__(self, port: Any = ..., clients: Sequence[str] = ...) -> None: ...
    def to_dict(self) -> dict[str, Any]: ...
