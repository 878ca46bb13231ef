import logging
from typing import Any, Mapping, Optional

from tycho.client import TychoClient as TychoClient
from tycho.client import TychoClientFactory as TychoClientFactory
from tycho.client import TychoStatus as TychoStatus
from tycho.client import TychoSystem as TychoSystem
from tycho.exceptions import ContextException as ContextException

__all__ = ["Principal", "TychoContext", "NullContext", "ContextFactory", "RegistryHttpCache", "mixin_merge"]

HTTP_TIMEOUT: float

class _MixinMerger:
    def merge(self, base: Any, addition: Any) -> Any: ...
    def __call__(self, base: Any, addition: Any) -> Any: ...

mixin_merge: _MixinMerger

class Principal:
    username: str
    access_token: Optional[str]
    refresh_token: Optional[str]
    def __init__(self, username: str, a_token: Optional[str] = ..., r_token: Optional[str] = ...) -> None: ...

class _Response:
    url: str
    status_code: int
    text: str
    headers: dict[str, str]
    from_cache: bool
    revalidated: bool
    def __init__(
        self,
        url: str,
        status_code: int,
        text: str,
        headers: Optional[dict[str, str]] = ...,
        from_cache: bool = ...,
        revalidated: bool = ...,
    ) -> None: ...
    @property
    def ok(self) -> bool: ...

class RegistryHttpCache:
    timeout: float
    max_age: float
    @property
    def stats(self) -> dict[str, int]: ...
    def __init__(self, timeout: float = ..., max_age: Optional[float] = ...) -> None: ...
    def clear(self) -> None: ...
    def get(self, url: str) -> _Response: ...
    def fetch(self, url: str, what: str = ...) -> str: ...

class TychoContext:
    tycho_config_url: str
    stub: bool
    http_session: RegistryHttpCache
    registry: dict[str, Any]
    app_defaults: dict[str, Any]
    client: TychoClient
    product: str
    apps: dict[str, dict[str, Any]]
    def __init__(
        self,
        registry_config: str = ...,
        app_defaults_config: str = ...,
        product: str = ...,
        tycho_config_url: str = ...,
        stub: bool = ...,
    ) -> None: ...
    def _get_config(self, file_name: str) -> Any: ...
    def log_dict(self, dict: Any, pre_dict_message: str = ..., level: int = logging.DEBUG) -> None: ...
    def add_conf_impl(self, apps: dict[str, Any], context: Mapping[str, Any]) -> dict[str, Any]: ...
    def inherit(
        self,
        contexts: Mapping[str, Any],
        context: Mapping[str, Any],
        apps: Optional[dict[str, Any]] = ...,
    ) -> dict[str, Any]: ...
    def mixin_defaults(self, apps: dict[str, Any]) -> None: ...
    def mixin(self, contexts: Mapping[str, Any], context: Mapping[str, Any], apps: dict[str, Any]) -> dict[str, Any]: ...
    def _grok(self) -> dict[str, dict[str, Any]]: ...
    def get_definition(self, app_id: str) -> dict[str, Any]: ...
    def get_spec(self, app_id: str) -> dict[str, Any]: ...
    def get_env_registry(self, app_id: str, settings: dict[str, Any]) -> dict[str, Any]: ...
    def get_settings(self, app_id: str) -> str: ...
    def status(self, request: Mapping[str, Any]) -> TychoStatus: ...
    def delete(self, request: Mapping[str, Any]) -> Any: ...
    def update(self, request: Mapping[str, Any]) -> Any: ...
    def start(
        self,
        principal: Principal,
        app_id: str,
        resource_request: Optional[Mapping[str, Any]],
        host: Optional[str],
        extra_container_env: Optional[Mapping[str, Any]] = ...,
    ) -> TychoSystem: ...
    def _start(self, request: Mapping[str, Any]) -> TychoSystem: ...
    async def astart(
        self,
        principal: Principal,
        app_id: str,
        resource_request: Optional[Mapping[str, Any]] = ...,
        host: Optional[str] = ...,
        extra_container_env: Optional[Mapping[str, Any]] = ...,
    ) -> TychoSystem: ...
    async def astatus(self, request: Optional[Mapping[str, Any]] = ...) -> TychoStatus: ...
    async def adelete(self, request: Mapping[str, Any]) -> Any: ...
    async def aupdate(self, request: Mapping[str, Any]) -> Any: ...
    async def aget_spec(self, app_id: str) -> dict[str, Any]: ...
    async def aget_definition(self, app_id: str) -> dict[str, Any]: ...

class NullContext(TychoContext):
    def __init__(self, product: str = ...) -> None: ...
    def status(self, request: Optional[Mapping[str, Any]] = ...) -> TychoStatus: ...
    def delete(self, request: Mapping[str, Any]) -> None: ...
    def update(self, request: Mapping[str, Any]) -> dict[str, Any]: ...
    def start(
        self,
        principal: Principal,
        app_id: str,
        resource_request: Optional[Mapping[str, Any]] = ...,
        host: Optional[str] = ...,
        extra_container_env: Optional[Mapping[str, Any]] = ...,
    ) -> TychoSystem: ...

class ContextFactory:
    _state: dict[str, Any]
    contexts: dict[str, TychoContext]
    def __init__(self) -> None: ...
    def get(
        self,
        product: str,
        registry_config: str = ...,
        app_defaults_config: str = ...,
        context_type: str = ...,
        tycho_config_url: str = ...,
    ) -> TychoContext: ...
