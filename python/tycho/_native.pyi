"""Type stub of the native core (built from src/ with PyO3)."""

from typing import Any, Mapping, Optional, Sequence

__all__ = [
    "compile_request",
    "parse_system",
    "render_template",
    "render_string",
    "yaml_load_all",
    "yaml_dump_all",
    "cli_main",
    "DEFAULT_CONFIG",
    "__version__",
]

__version__: str
DEFAULT_CONFIG: str

def compile_request(
    request: Mapping[str, Any],
    ambassador: bool = ...,
    identifier: Optional[str] = ...,
    deployment_uid: Optional[str] = ...,
    config: Any = ...,
    missing_claims: Optional[Sequence[str]] = ...,
    secret_env: Optional[Sequence[tuple[str, str]]] = ...,
) -> list[dict[str, Any]]: ...
def parse_system(request: Mapping[str, Any], identifier: Optional[str] = ..., config: Any = ...) -> dict[str, Any]: ...
def render_template(name: str, context: Mapping[str, Any], config: Any = ...) -> list[Any]: ...
def render_string(source: str, context: Mapping[str, Any]) -> str: ...
def yaml_load_all(text: str) -> list[Any]: ...
def yaml_dump_all(docs: Any) -> str: ...
def cli_main(argv: Sequence[str]) -> int: ...
