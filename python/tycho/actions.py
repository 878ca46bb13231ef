"""Request handlers behind the REST API and the in-process client.

Each resource's ``post(request)`` returns ``{"status": "success"|"error", "result": ...,
"message": ...}``; on failure ``result`` is ``{"error": message}``. Requests are checked
against the component schemas of ``api-schema.yaml`` (a small built-in checker; no
jsonschema dependency) and an invalid request gives an error response.

The module-level :class:`tycho.core.Tycho` instance is created on first use.
"""

import json
import logging
import os
import threading

from tycho.exceptions import TychoException

logger = logging.getLogger(__name__)

__all__ = [
    "TychoResource",
    "StartSystemResource",
    "StatusSystemResource",
    "DeleteSystemResource",
    "ModifySystemResource",
    "tycho",
    "schema_file_path",
]

schema_file_path = os.path.join(os.path.dirname(__file__), "api-schema.yaml")

backplane = None
_tycho = None
_lock = threading.Lock()
_schema_cache = None


def tycho():
    """The shared :class:`tycho.core.Tycho` (created on the first call)."""
    global _tycho
    if _tycho is None:
        with _lock:
            if _tycho is None:
                from tycho.core import Tycho

                _tycho = Tycho(backplane=backplane)
    return _tycho


def _load_schema():
    global _schema_cache
    if _schema_cache is None:
        from tycho import _native

        with open(schema_file_path, "r") as stream:
            docs = _native.yaml_load_all(stream.read())
        _schema_cache = docs[0] if docs else {}
    return _schema_cache


# ---------------------------------------------------------------- schema checking

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _resolve(ref, root):
    if not ref.startswith("#/"):
        raise TychoException(f"unsupported schema reference {ref}")
    node = root
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _where(path):
    return "request" + "".join(f"[{p!r}]" for p in path)


def check_schema(value, schema, root, path=()):
    """Errors (strings) found checking ``value`` against an OpenAPI 3.0 ``schema``.

    Supports $ref, type, nullable, enum, required, properties, additionalProperties,
    items and anyOf.
    """
    if "$ref" in schema:
        return check_schema(value, _resolve(schema["$ref"], root), root, path)
    if value is None and schema.get("nullable"):
        return []
    errors = []
    if "anyOf" in schema:
        options = [check_schema(value, option, root, path) for option in schema["anyOf"]]
        if all(options):
            errors.append(f"{_where(path)} does not match any allowed form: {options[0][0]}")
            return errors
    wanted = schema.get("type")
    if wanted and not _TYPES[wanted](value):
        got = "null" if value is None else type(value).__name__
        return [f"{_where(path)} must be of type {wanted}, not {got}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{_where(path)} must be one of {schema['enum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{_where(path)} lacks the required property {key!r}")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                errors.extend(check_schema(item, properties[key], root, path + (key,)))
            elif extra is False:
                errors.append(f"{_where(path)} has the unexpected property {key!r}")
            elif isinstance(extra, dict):
                errors.extend(check_schema(item, extra, root, path + (key,)))
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors.extend(check_schema(item, schema["items"], root, path + (i,)))
    return errors


def _message_of(exception):
    args = exception.args
    if len(args) == 2:
        details = args[1]
        if isinstance(details, (list, tuple)):
            details = "".join(str(d) for d in details)
        return f"{args[0]} {details}".rstrip()
    if len(args) >= 1:
        return args[0]
    return str(exception) or type(exception).__name__


class TychoResource:
    """Base class of the request handlers."""

    def __init__(self):
        self.specs = {}

    def validate(self, request, component):
        """Check ``request`` against schema component ``component``.

        :raises TychoException: naming every problem found.
        """
        if not self.specs:
            self.specs = _load_schema()
        schemas = self.specs["components"]["schemas"]
        logger.debug("--:Validating obj against %s", component)
        errors = check_schema(request, schemas[component], self.specs)
        if errors:
            raise TychoException(f"invalid {component}: " + "; ".join(errors))

    def post(self, request):
        """Handle ``request``; returns a response dict."""
        raise NotImplementedError

    def create_response(self, result=None, status="success", message="", exception=None):
        """The response dict; an ``exception`` makes it an error response carrying its message."""
        if exception is not None:
            logger.debug("request failed", exc_info=exception)
            status = "error"
            message = _message_of(exception)
            result = {"error": message}
        return {"status": status, "result": result, "message": message}


class StartSystemResource(TychoResource):
    """Parse, model, emit orchestrator artifacts and execute a system."""

    def post(self, request):
        try:
            name = request.get("name") if isinstance(request, dict) else None
            logger.debug("actions.StartSystemResource.post - start-system: %s", name)
            self.validate(request, component="System")
            system = tycho().parse(request)
            return self.create_response(
                result=tycho().get_compute().start(system), message=f"Started system {system.name}"
            )
        except Exception as e:
            logger.error("failed to start system: %s", _message_of(e))
            return self.create_response(exception=e, message="Failed to create system.")


class DeleteSystemResource(TychoResource):
    """Delete a system (by GUID) and everything it created."""

    def post(self, request):
        system_name = None
        try:
            logger.debug("delete-request: %s", json.dumps(request, default=str))
            self.validate(request, component="DeleteRequest")
            system_name = request["name"]
            return self.create_response(
                result=tycho().get_compute().delete(system_name), message=f"Deleted system {system_name}"
            )
        except Exception as e:
            logger.error("failed to delete system %s: %s", system_name, _message_of(e))
            return self.create_response(exception=e, message=f"Failed to delete system {system_name}.")


class StatusSystemResource(TychoResource):
    """Status of running systems: by GUID (``name``), by ``username``, or all."""

    def post(self, request):
        try:
            logger.debug("list-request: %s", request)
            self.validate(request, component="StatusRequest")
            system_name = request.get("name", None)
            system_username = request.get("username", None)
            return self.create_response(
                result=tycho().get_compute().status(system_name, system_username),
                message=f"Get status for system {system_name}",
            )
        except Exception as e:
            logger.error("failed to get status: %s", _message_of(e))
            return self.create_response(exception=e, message="Failed to get system status.")


class ModifySystemResource(TychoResource):
    """Change labels and cpu/memory of a running system."""

    def post(self, request):
        try:
            logger.debug("System specs to modify: %s", request)
            self.validate(request, component="ModifyRequest")
            system_modify = tycho().parse_modify(request)
            return self.create_response(
                result=tycho().get_compute().modify(system_modify), message="Modified the system"
            )
        except Exception as e:
            logger.error("failed to modify system: %s", _message_of(e))
            return self.create_response(exception=e, message="Failed to modify system status.")
