from typing import Any, Callable, KeysView

from tycho.compute import Compute

__all__ = ["ComputeFactory", "supported_backplanes", "config"]

config: dict[str, str]
config_factory: dict[str, Callable[[Any], Compute]]
supported_backplanes: KeysView[str]

class ComputeFactory:
    @staticmethod
    def is_valid_backplane(backplane: object) -> bool: ...
    @staticmethod
    def set_backplane(backplane: str) -> None: ...
    @staticmethod
    def create_compute(config: Any, backplane: str | None = ...) -> Compute: ...
