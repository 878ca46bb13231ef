from typing import Any, Callable, Iterable, Mapping, Optional

from tycho.actions import TychoResource

__all__ = ["TychoService", "TychoStatus", "TychoSystem", "TychoClient", "TychoClientFactory", "TychoApps"]

mem_converter: dict[str, Callable[[float], float]]

class TychoService:
    try_minikube: bool
    name: Any
    app_id: Any
    ip_address: Any
    port: Any
    identifier: Any
    creation_time: Any
    username: Any
    utilization: dict[str, Any]
    total_util: dict[str, Any]
    conn_string: str
    workspace_name: str
    is_ready: bool
    reason: Optional[str]
    def __init__(
        self,
        name: Any,
        app_id: Any,
        ip_address: Any,
        port: Any,
        sid: Any = ...,
        creation_time: Any = ...,
        username: Any = ...,
        utilization: Optional[Mapping[str, Any]] = ...,
        conn_string: str = ...,
        workspace_name: str = ...,
        is_ready: bool = ...,
    ) -> None: ...
    def get_utilization(self, utilization: Optional[Mapping[str, Any]]) -> dict[str, Any]: ...

class TychoStatus:
    status: str
    services: list[TychoService]
    message: Any
    def __init__(self, status: str, result: Any, message: Any) -> None: ...

class TychoSystem:
    status: str
    name: str
    identifier: Any
    services: list[TychoService]
    conn_string: str
    message: Any
    def __init__(self, status: str, result: Any, message: Any) -> None: ...

class TychoClient:
    timeout: float
    url: str
    actions: dict[str, TychoResource]
    def __init__(self, url: str = ...) -> None: ...
    def request(self, service: str, request: Any) -> dict[str, Any]: ...
    def format_name(self, name: str) -> str: ...
    def parse_env(self, environment: Optional[str]) -> dict[str, str]: ...
    def start(self, request: Mapping[str, Any]) -> TychoSystem: ...
    def delete(self, request: Mapping[str, Any]) -> dict[str, Any]: ...
    def status(self, request: Mapping[str, Any]) -> TychoStatus: ...
    def modify(self, request: Mapping[str, Any]) -> dict[str, Any]: ...
    async def astart(self, request: Mapping[str, Any]) -> TychoSystem: ...
    async def astatus(self, request: Mapping[str, Any]) -> TychoStatus: ...
    async def adelete(self, request: Mapping[str, Any]) -> dict[str, Any]: ...
    async def amodify(self, request: Mapping[str, Any]) -> dict[str, Any]: ...
    def up(self, name: str, system: Mapping[str, Any], settings: str = ...) -> None: ...
    def list(self, name: Optional[str], terse: bool = ...) -> None: ...
    def down(self, names: Iterable[str]) -> None: ...
    def patch(self, mod_items: Mapping[str, Any]) -> Optional[dict[str, Any]]: ...

class TychoClientFactory:
    api: Any
    def __init__(self) -> None: ...
    def get_client(self, name: str = ..., namespace: str = ..., default_url: str = ...) -> TychoClient: ...

class TychoApps:
    app: str
    repo_url: str
    repo_name: str
    apps_dir: str
    source_file: str
    env: str
    metadata: dict[str, Any]
    def __init__(self, app: str) -> None: ...
    def deleterepo(self, repo_path: str) -> None: ...
    def getmetadata(self) -> dict[str, Any]: ...
