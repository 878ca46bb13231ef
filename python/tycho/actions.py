"""Request handlers behind the REST API and the in-process client.

Each resource's ``post(request)`` returns ``{"status": "success"|"error", "result": ...,
"message": ...}``; on failure ``result`` is ``{"error": message}``. Requests are checked
against the component schemas of ``api-schema.yaml`` by the REST server's own checker
(``tycho._native.validate_request``) and an invalid request gives an error response.

The module-level :class:`tycho.core.Tycho` instance is created on first use.
"""

import logging
import os
import threading
from typing import Any, Optional

from tycho import _native
from tycho.core import Tycho
from tycho.tycho_utils import brief

logger = logging.getLogger(__name__)

__all__ = [
    "TychoResource",
    "StartSystemResource",
    "StatusSystemResource",
    "DeleteSystemResource",
    "ModifySystemResource",
    "StopSystemResource",
    "ResumeSystemResource",
    "TouchSystemResource",
    "tycho",
    "schema_file_path",
]

schema_file_path: str = os.path.join(os.path.dirname(__file__), "api-schema.yaml")

backplane: Optional[str] = None
_tycho = None
_lock = threading.Lock()
_schema_cache = None


def tycho() -> Tycho:
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
        with open(schema_file_path, "r") as stream:
            docs = _native.yaml_load_all(stream.read())
        _schema_cache = docs[0] if docs else {}
    return _schema_cache


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

    def __init__(self) -> None:
        self.specs: dict[str, Any] = {}

    def validate(self, request: Any, component: str) -> None:
        """Check ``request`` against schema component ``component``.

        :raises TychoException: naming every problem found.
        """
        if not self.specs:
            self.specs = _load_schema()
        logger.debug("--:Validating obj against %s", component)
        # The REST server's check (src/model/schema.rs), with its messages.
        _native.validate_request(component, request)

    def post(self, request: Any) -> dict[str, Any]:
        """Handle ``request``; returns a response dict."""
        raise NotImplementedError

    def create_response(self, result: Any=None, status: str="success", message: str="", exception: Optional[BaseException]=None) -> dict[str, Any]:
        """The response dict; an ``exception`` makes it an error response carrying its message."""
        if exception is not None:
            logger.debug("request failed", exc_info=exception)
            status = "error"
            message = _message_of(exception)
            result = {"error": message}
        return {"status": status, "result": result, "message": message}


class StartSystemResource(TychoResource):
    """Parse, model, emit orchestrator artifacts and execute a system."""

    def _parse(self, request: Any) -> Any:
        """The checked model of a start request (a backplane that starts the model)."""
        self.validate(request, component="System")
        return tycho().parse(request)

    def post(self, request: Any) -> dict[str, Any]:
        try:
            name = request.get("name") if isinstance(request, dict) else None
            logger.debug("actions.StartSystemResource.post - start-system: %s", name)
            # One native crossing on Kubernetes: checked, parsed, compiled and started.
            result, system_name = tycho().get_compute().start_request(request, self._parse)
            return self.create_response(result=result, message=f"Started system {system_name}")
        except Exception as e:
            logger.error("failed to start system: %s", _message_of(e))
            return self.create_response(exception=e, message="Failed to create system.")


class DeleteSystemResource(TychoResource):
    """Delete a system (by GUID) and everything it created."""

    def post(self, request: Any) -> dict[str, Any]:
        system_name = None
        try:
            logger.debug("delete-request: %s", brief(request))
            system_name = request.get("name") if isinstance(request, dict) else None
            # One native crossing on Kubernetes: checked and deleted.
            result = tycho().get_compute().delete_request(request, self.validate)
            return self.create_response(result=result, message=f"Deleted system {system_name}")
        except Exception as e:
            logger.error("failed to delete system %s: %s", system_name, _message_of(e))
            return self.create_response(exception=e, message=f"Failed to delete system {system_name}.")


class StatusSystemResource(TychoResource):
    """Status of running systems: by GUID (``name``), by ``username``, or all."""

    def status_object(self, request: Any) -> Any:
        """The status as a :class:`tycho.client.TychoStatus` (what ``TychoClient.status``
        returns in process). When :meth:`post` is this class's own, the compute builds it
        from its rows without a response dict (``status_object`` of the compute);
        otherwise it is ``TychoStatus(**self.post(request))``."""
        if type(self).post is not _STATUS_POST:
            return _native.TychoStatus(**self.post(request))
        try:
            logger.debug("list-request: %s", request)
            message = f"Get status for system {request.get('name', None)}"
            return tycho().get_compute().status_object(request, self.validate, message)
        except Exception as e:
            logger.error("failed to get status: %s", _message_of(e))
            return _native.TychoStatus(**self.create_response(exception=e, message="Failed to get system status."))

    def post(self, request: Any) -> dict[str, Any]:
        try:
            logger.debug("list-request: %s", request)
            # One native crossing on Kubernetes: checked and read.
            rows = tycho().get_compute().status_request(request, self.validate)
            return self.create_response(result=rows, message=f"Get status for system {request.get('name', None)}")
        except Exception as e:
            logger.error("failed to get status: %s", _message_of(e))
            return self.create_response(exception=e, message="Failed to get system status.")


#: StatusSystemResource.post as defined here (a subclass or patch that replaces it is asked).
_STATUS_POST = StatusSystemResource.post


class ModifySystemResource(TychoResource):
    """Change labels and cpu/memory of a running system."""

    def _parse(self, request: Any) -> Any:
        """The checked modify model of a request (a backplane that applies the model)."""
        self.validate(request, component="ModifyRequest")
        return tycho().parse_modify(request)

    def post(self, request: Any) -> dict[str, Any]:
        try:
            logger.debug("System specs to modify: %s", request)
            # One native crossing on Kubernetes: checked and applied.
            result = tycho().get_compute().modify_request(request, self._parse)
            return self.create_response(result=result, message="Modified the system")
        except Exception as e:
            logger.error("failed to modify system: %s", _message_of(e))
            return self.create_response(exception=e, message="Failed to modify system status.")


class _ByNameResource(TychoResource):
    """A request ``{"name": GUID}`` handled by one compute method (not in tycho-api 1.17.3)."""

    component = ""
    method = ""
    done = ""

    def post(self, request: Any) -> dict[str, Any]:
        system_name = None
        try:
            self.validate(request, component=self.component)
            system_name = request["name"]
            result = getattr(tycho().get_compute(), self.method)(system_name)
            return self.create_response(result=result, message=f"{self.done} system {system_name}")
        except Exception as e:
            logger.error("failed to %s system %s: %s", self.method, system_name, _message_of(e))
            return self.create_response(exception=e, message=f"Failed to {self.method} system {system_name}.")


class StopSystemResource(_ByNameResource):
    """Stop a system: scale it to 0, keeping everything it owns."""

    component, method, done = "StopRequest", "stop", "Stopped"


class ResumeSystemResource(_ByNameResource):
    """Resume a stopped system."""

    component, method, done = "ResumeRequest", "resume", "Resumed"


class TouchSystemResource(_ByNameResource):
    """Record activity of a system now."""

    component, method, done = "TouchRequest", "touch", "Touched"


#: The request handlers of the in-process client by service, with their methods as
#: defined here (see :func:`_native_target`).
_OWN: dict[str, tuple[type, dict[str, Any]]] = {
    service: (cls, {name: getattr(cls, name) for name in ("post", "validate", "create_response", "_parse", "status_object")
                    if hasattr(cls, name)})
    for service, cls in (("start", StartSystemResource), ("status", StatusSystemResource),
                         ("delete", DeleteSystemResource), ("modify", ModifySystemResource))
}


def _native_target(service: str, action: Any) -> Any:
    """``(backplane, configuration, namespace)`` when ``action``, the in-process client's
    handler of ``service``, is tycho's own (its class exactly, no method replaced by a
    subclass or a ``mock.patch``) and the compute runs the request in one native call
    (:meth:`tycho.compute.Compute._native_target`): ``tycho.client.TychoClient`` then
    runs the request in its own crossing, answering as the handler would. Else None."""
    own = _OWN.get(service)
    if own is None or type(action) is not own[0]:
        return None
    cls, methods = own
    if any(name in vars(action) or getattr(cls, name) is not method for name, method in methods.items()):
        return None
    target = getattr(tycho().get_compute(), "_native_target", None)
    return target(service) if target is not None else None
