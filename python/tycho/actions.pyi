from typing import Any, Optional

from tycho.core import Tycho

__all__ = [
    "TychoResource",
    "StartSystemResource",
    "StatusSystemResource",
    "DeleteSystemResource",
    "ModifySystemResource",
    "tycho",
    "schema_file_path",
]

schema_file_path: str
backplane: Optional[str]

def tycho() -> Tycho: ...
def check_schema(value: Any, schema: dict[str, Any], root: dict[str, Any], path: tuple[Any, ...] = ...) -> list[str]: ...

class TychoResource:
    specs: dict[str, Any]
    def __init__(self) -> None: ...
    def validate(self, request: Any, component: str) -> None: ...
    def post(self, request: Any) -> dict[str, Any]: ...
    def create_response(
        self,
        result: Any = ...,
        status: str = ...,
        message: str = ...,
        exception: Optional[BaseException] = ...,
    ) -> dict[str, Any]: ...

class StartSystemResource(TychoResource):
    def post(self, request: Any) -> dict[str, Any]: ...

class DeleteSystemResource(TychoResource):
    def post(self, request: Any) -> dict[str, Any]: ...

class StatusSystemResource(TychoResource):
    def post(self, request: Any) -> dict[str, Any]: ...

class ModifySystemResource(TychoResource):
    def post(self, request: Any) -> dict[str, Any]: ...
