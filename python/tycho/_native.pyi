"""Type stub of the native core (built from src/ with PyO3)."""

from typing import Any, Awaitable, Callable, Mapping, Optional, Sequence, final

from typing_extensions import Self, disjoint_base

__all__ = [
    "compile_request",
    "parse_system",
    "render_template",
    "render_model",
    "render_string",
    "yaml_load_all",
    "yaml_dump_all",
    "cli_main",
    "metrics_text",
    "backplane_name",
    "BACKPLANES",
    "DEFAULT_CONFIG",
    "__version__",
]

__version__: str
DEFAULT_CONFIG: str
BACKPLANES: tuple[str, ...]

def compile_request(
    request: Mapping[str, Any],
    ambassador: bool = ...,
    identifier: Optional[str] = ...,
    deployment_uid: Optional[str] = ...,
    config: Any = ...,
    missing_claims: Optional[Sequence[str]] = ...,
    secret_env: Optional[Sequence[tuple[str, str]]] = ...,
) -> list[dict[str, Any]]: ...
def parse_system(request: Mapping[str, Any], identifier: Optional[str] = ..., config: Any = ..., to_plain: Optional[Callable[[Any], Any]] = ...) -> dict[str, Any]: ...
def render_template(name: str, context: Mapping[str, Any], config: Any = ...) -> list[Any]: ...
def render_model(name: str, system: Any, context: Mapping[str, Any], skip: Mapping[type, tuple[str, ...]], to_plain: Callable[[Any], Any], config: Any = ...) -> list[Any]: ...
def render_string(source: str, context: Mapping[str, Any]) -> str: ...
def yaml_load_all(text: str) -> list[Any]: ...
def template_literal(value: Any) -> Any: ...
def yaml_dump_all(docs: Any) -> str: ...
def cli_main(argv: Sequence[str]) -> int: ...
def metrics_text() -> str: ...
def backplane_name(name: str) -> Optional[str]: ...

# ---- the model's rules, shared with the core (src/bindings/compile.rs)
__all__ += [
    "template_literal",
    "model_volumes",
    "client_network",
    "username_label",
    "model_defaults",
    "validate_request",
    "deep_merge",
    "parse_env",
    "environment_namespace",
    "environment_python",
    "to_plain",
]

def model_volumes(containers: Sequence[tuple[str, Sequence[str]]]) -> list[dict[str, Any]]: ...
def client_network(service: str, client: Any) -> str: ...
def username_label(username: str) -> str: ...
def model_defaults() -> dict[str, Any]: ...
def validate_request(component: str, request: Any) -> None: ...
def deep_merge(base: Any, addition: Any) -> Any: ...
def parse_env(text: str) -> dict[str, str]: ...
def environment_namespace(explicit: Optional[str] = ..., *, variable: bool = ...) -> Optional[str]: ...
def environment_python() -> dict[str, Any]: ...
def to_plain(value: Any, what: str = ...) -> Any: ...

# ---- app registry and asyncio bridge (src/bindings/registry.rs)
__all__ += [
    "RegistryCache",
    "registry_load_config",
    "registry_grok",
    "registry_inherit",
    "registry_mixin_defaults",
    "registry_mixin",
    "registry_add_conf_impl",
    "registry_render_spec",
    "registry_start_request",
    "registry_settings_url",
    "registry_icon_url",
    "aio_call",
]

@final
class RegistryCache:
    timeout: float
    max_age: float
    def __new__(cls, timeout: float = ..., max_age: float = ...) -> RegistryCache: ...
    def stats(self) -> dict[str, int]: ...
    def clear(self) -> None: ...
    def get(self, url: str) -> tuple[int, str, list[tuple[str, str]], bool, bool, Optional[str]]: ...
    def fetch(self, url: str, what: str) -> tuple[int, str, list[tuple[str, str]], bool, bool, Optional[str]]: ...

def registry_load_config(
    cache: RegistryCache, tycho_config_url: str, file_name: str, conf_dir: str
) -> tuple[Any, Optional[str]]: ...
def registry_grok(registry: Any, app_defaults: Any, product: str, tycho_config_url: str) -> dict[str, Any]: ...
def registry_inherit(contexts: Mapping[str, Any], context: Mapping[str, Any], name: str = ...) -> dict[str, Any]: ...
def registry_mixin_defaults(apps: Mapping[str, Any], defaults: Any) -> dict[str, Any]: ...
def registry_mixin(
    contexts: Mapping[str, Any], context: Mapping[str, Any], apps: Mapping[str, Any]
) -> dict[str, Any]: ...
def registry_add_conf_impl(apps: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]: ...
def registry_render_spec(app_id: str, url: str, text: str, settings: Any) -> dict[str, Any]: ...
def registry_start_request(
    cache: Optional[RegistryCache],
    registry: Any,
    product: str,
    app_id: str,
    app: Mapping[str, Any],
    principal: Mapping[str, Any],
    resource_request: Any,
    *,
    spec: Any = ...,
    settings: Optional[str] = ...,
    to_plain: Any = ...,
) -> tuple[dict[str, Any], Any, Optional[str]]: ...
def registry_settings_url(spec_url: str) -> str: ...
def registry_icon_url(spec_url: str) -> str: ...
def aio_call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]: ...

# ---- Kubernetes executor (src/bindings/kube.rs)
__all__ += [
    "kube_start",
    "kube_start_request",
    "kube_status",
    "kube_status_request",
    "kube_status_object",
    "kube_delete",
    "kube_delete_request",
    "kube_modify",
    "kube_modify_request",
    "kube_namespace",
    "kube_service_url",
    "kube_readiness",
    "kube_wait",
    "kube_follow",
    "ProgressFollower",
]

def kube_start(
    system: Any,
    *,
    config: Any = ...,
    namespace: Optional[str] = ...,
    skip: Optional[dict[type, tuple[str, ...]]] = ...,
    to_plain: Optional[Callable[..., Any]] = ...,
) -> dict[str, Any]: ...
def kube_start_request(
    request: Any, *, config: Any = ..., namespace: Optional[str] = ...
) -> tuple[dict[str, Any], str]: ...
def kube_status(
    name: Optional[str] = ..., username: Optional[str] = ..., *, namespace: Optional[str] = ...
) -> list[dict[str, Any]]: ...
def kube_status_request(request: Any, *, namespace: Optional[str] = ...) -> list[dict[str, Any]]: ...
def kube_status_object(request: Any, message: str, *, namespace: Optional[str] = ...) -> TychoStatus: ...
def kube_delete(name: str, *, namespace: Optional[str] = ...) -> dict[str, Any]: ...
def kube_delete_request(request: Any, *, namespace: Optional[str] = ...) -> dict[str, Any]: ...
def kube_modify(
    modify: Any,
    *,
    config: Any = ...,
    namespace: Optional[str] = ...,
    skip: Optional[dict[type, tuple[str, ...]]] = ...,
    to_plain: Optional[Callable[..., Any]] = ...,
) -> dict[str, Any]: ...
def kube_modify_request(
    request: Any, *, config: Any = ..., namespace: Optional[str] = ...
) -> dict[str, Any]: ...
def kube_namespace() -> str: ...
def kube_service_url(name: str, namespace: str) -> Optional[str]: ...
def kube_readiness(sid: str, *, namespace: Optional[str] = ...) -> dict[str, Any]: ...
def kube_wait(sid: str, timeout: float, *, namespace: Optional[str] = ...) -> dict[str, Any]: ...
@final
class ProgressFollower:
    def __aiter__(self) -> ProgressFollower: ...
    def __anext__(self) -> Awaitable[dict[str, Any]]: ...
    def close(self) -> None: ...

def kube_follow(
    sid: str, timeout: Optional[float] = ..., *, namespace: Optional[str] = ...
) -> ProgressFollower: ...

# ---- Docker backplane (src/bindings/docker.rs)
__all__ += [
    "docker_start",
    "docker_start_request",
    "docker_status",
    "docker_status_request",
    "docker_status_object",
    "docker_delete",
    "docker_delete_request",
    "docker_modify",
    "docker_modify_request",
]

def docker_start(
    system: Any,
    *,
    config: Any = ...,
    skip: Optional[dict[type, tuple[str, ...]]] = ...,
    to_plain: Optional[Callable[..., Any]] = ...,
) -> dict[str, Any]: ...
def docker_start_request(request: Any, *, config: Any = ...) -> tuple[dict[str, Any], str]: ...
def docker_status(
    name: Optional[str] = ..., username: Optional[str] = ..., *, config: Any = ..., reasons: bool = ...
) -> list[dict[str, Any]]: ...
def docker_status_request(request: Any, *, config: Any = ...) -> list[dict[str, Any]]: ...
def docker_status_object(request: Any, message: str, *, config: Any = ...) -> TychoStatus: ...
def docker_delete(name: str, *, config: Any = ...) -> dict[str, Any]: ...
def docker_delete_request(request: Any, *, config: Any = ...) -> dict[str, Any]: ...
def docker_modify(
    modify: Any,
    *,
    config: Any = ...,
    skip: Optional[dict[type, tuple[str, ...]]] = ...,
    to_plain: Optional[Callable[..., Any]] = ...,
) -> dict[str, Any]: ...
def docker_modify_request(request: Any, *, config: Any = ...) -> dict[str, Any]: ...

# ---- Stop, resume, touch, cull, the modify request's rule (src/bindings/stopcull.rs)
__all__ += [
    "system_stop",
    "system_resume",
    "system_touch",
    "system_cull",
    "modify_model",
]

def modify_model(request: Mapping[str, Any]) -> dict[str, Any]: ...

def system_stop(
    backplane: str, name: str, *, config: Any = ..., namespace: Optional[str] = ...
) -> dict[str, Any]: ...
def system_resume(
    backplane: str, name: str, *, config: Any = ..., namespace: Optional[str] = ...
) -> dict[str, Any]: ...
def system_touch(backplane: str, name: str, *, namespace: Optional[str] = ...) -> dict[str, Any]: ...
def system_cull(
    backplane: str, options: Mapping[str, Any], *, namespace: Optional[str] = ...
) -> dict[str, Any]: ...

# ---------------------------------------------------------------- tycho.client's and tycho.context's classes
# (src/bindings/results.rs, src/bindings/client.rs, src/bindings/context.rs)

__all__ += ["TychoService", "TychoStatus", "TychoSystem", "TychoClient", "TychoContext"]

@disjoint_base
class TychoService:
    """A running service endpoint (a status row or a started container); ``sid`` is
    kept as ``identifier``, ``total_util`` is :meth:`get_utilization` of ``utilization``."""

    try_minikube: bool
    name: Any
    app_id: Any
    ip_address: Any
    port: Any
    identifier: Any
    creation_time: Any
    username: Any
    utilization: Any
    total_util: Any
    conn_string: Any
    workspace_name: Any
    is_ready: Any
    reason: Any
    def __init__(
        self,
        name: Any,
        app_id: Any,
        ip_address: Any,
        port: Any,
        sid: Any = None,
        creation_time: Any = None,
        username: Any = "",
        utilization: Optional[Mapping[str, Any]] = None,
        conn_string: Any = "",
        workspace_name: Any = "",
        is_ready: Any = False,
    ) -> None: ...
    def get_utilization(self, utilization: Optional[Mapping[str, Any]]) -> dict[str, Any]:
        """Totals over the containers' limits: ``cpu`` in millicores, ``gpu`` 1000 per
        GPU, ``memory`` and ``ephemeralStorage`` in GB as strings (binary suffixes read
        as decimal, as tycho-api 1.17.3 did)."""

@disjoint_base
class TychoStatus:
    """A response to a status request; ``services`` holds one TychoService per row."""

    status: Any
    services: list[TychoService]
    message: Any
    def __init__(self, status: Any, result: Any, message: Any) -> None: ...

@disjoint_base
class TychoSystem:
    """A started system; the constructor raises StartException when ``status`` is ``error``."""

    status: Any
    name: Any
    identifier: Any
    services: list[TychoService]
    conn_string: Any
    message: Any
    def __init__(self, status: Any, result: Any, message: Any) -> None: ...

@disjoint_base
class TychoClient:
    """The native base of :class:`tycho.client.TychoClient`."""

    timeout: float
    url: Any
    actions: Any
    def __init__(self, url: Any = "http://localhost:5000") -> None: ...
    def request(self, service: Any, request: Any) -> Any: ...
    def format_name(self, name: Any) -> Any: ...
    def parse_env(self, environment: Optional[str]) -> dict[str, str]: ...
    def start(self, request: Any) -> TychoSystem: ...
    def status(self, request: Any) -> TychoStatus: ...
    def delete(self, request: Any) -> Any: ...
    def modify(self, request: Any) -> Any: ...
    def patch(self, mod_items: Any) -> Any: ...
    def stop(self, request: Any) -> Any: ...
    def resume(self, request: Any) -> Any: ...
    def touch(self, request: Any) -> Any: ...

@disjoint_base
class TychoContext:
    """The native base of :class:`tycho.context.TychoContext`: its operations."""

    def __new__(cls, *_args: Any, **_kwargs: Any) -> Self: ...
    def start(
        self,
        principal: Any,
        app_id: Any,
        resource_request: Any,
        host: Any,
        extra_container_env: Any = ...,
    ) -> TychoSystem: ...
    def _start(self, request: Any) -> TychoSystem: ...
    def status(self, request: Any) -> TychoStatus: ...
    def delete(self, request: Any) -> Any: ...
    def update(self, request: Any) -> Any: ...
    def _by_name(self, service: str, name: Any) -> Any: ...
    def stop(self, name: Any) -> Any: ...
    def resume(self, name: Any) -> Any: ...
    def touch(self, name: Any) -> Any: ...
