from typing import Any, Optional

from tycho.compute import Compute
from tycho.model import ModifySystem, System

__all__ = ["KubernetesCompute", "EXECUTOR_UNAVAILABLE"]

EXECUTOR_UNAVAILABLE: str

class KubernetesCompute(Compute):
    config: Any
    try_minikube: bool
    def __init__(self, config: Any) -> None: ...
    @staticmethod
    def executor_available() -> bool: ...
    @property
    def namespace(self) -> str: ...
    @namespace.setter
    def namespace(self, value: Optional[str]) -> None: ...
    def get_namespace(self, namespace: str = ...) -> str: ...
    def start(self, system: System, namespace: str = ...) -> dict[str, Any]: ...  # type: ignore[override]
    def delete(self, name: str, namespace: str = ...) -> dict[str, Any]: ...
    def status(self, name: Optional[str] = ..., username: Optional[str] = ..., namespace: str = ...) -> list[dict[str, Any]]: ...
    def modify(self, system_modify: ModifySystem) -> dict[str, Any]: ...  # type: ignore[override]
