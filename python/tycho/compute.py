"""The compute back end interface (what a backplane such as Kubernetes implements)."""

import logging
from typing import Any, Callable, Optional

logger = logging.getLogger(__name__)

__all__ = ["Compute"]


_SERVICES = ("start", "status", "delete", "modify")


def _native_requests(cls: type) -> type:
    """Class decorator of a backplane whose requests run in one native call each: records
    its own ``start``, ``status``, ``delete`` and ``modify`` (:meth:`Compute._own`) and
    the methods the native client may run a request without (:meth:`Compute._native_target`)."""
    cls._NATIVE_REQUESTS = {name: cls.__dict__[name] for name in _SERVICES}  # type: ignore[attr-defined]
    cls._NATIVE_CALLS = {  # type: ignore[attr-defined]
        name: getattr(cls, name)
        for service in _SERVICES
        for name in (f"{service}_request", f"_{service}_request", "_native_args")
    }
    return cls


class Compute:
    """Abstraction of a compute fabric that runs systems."""

    def start(self, system: Any, namespace: str="default") -> dict[str, Any]:
        """Start ``system`` (a :class:`tycho.model.System`); returns the start result."""
        raise NotImplementedError("Implement start for this backplane.")

    #: The methods (``start``, ``status``, ``delete``, ``modify``) whose request runs in one
    #: native call on this backplane, as the backplane defines them (see :meth:`_own`).
    _NATIVE_REQUESTS: dict[str, Any] = {}

    def _own(self, method: str) -> bool:
        """Whether ``method`` is the backplane's own: not replaced by a subclass or a
        ``mock.patch``. Then its request runs in one native call (``_<method>_request``);
        else step by step, through the replacement."""
        own = self._NATIVE_REQUESTS.get(method)
        return own is not None and getattr(getattr(self, method), "__func__", None) is own

    #: The backplane's name for ``tycho._native`` (None: its requests are not native).
    _BACKPLANE: Optional[str] = None
    _NATIVE_CALLS: dict[str, Any] = {}

    def _native_args(self) -> tuple[Any, Optional[str]]:
        """``(configuration, explicit namespace)`` of this backplane's native requests."""
        return None, None

    def _native_target(self, service: str) -> Optional[tuple[str, Any, Optional[str]]]:
        """``(backplane, configuration, namespace)`` when the request of ``service``
        (start, status, delete, modify) runs in one native call here and nothing on its
        way is replaced (by a subclass, or a ``mock.patch`` on the class or this
        object): then ``tycho.client.TychoClient`` runs it in its own crossing. Else None."""
        if self._BACKPLANE is None or service not in _SERVICES or not self._own(service):
            return None
        for name in (f"{service}_request", f"_{service}_request", "_native_args"):
            if name in vars(self) or getattr(type(self), name) is not self._NATIVE_CALLS.get(name):
                return None
        config, namespace = self._native_args()
        return self._BACKPLANE, config, namespace

    def start_request(self, request: Any, parse: Callable[[Any], Any]) -> tuple[dict[str, Any], str]:
        """Start the system of a start request; returns ``(result, system name)``. In one
        native call where the backplane has it (:meth:`_own`), else ``parse(request)``
        (the checked :class:`tycho.model.System`), then :meth:`start`."""
        if self._own("start"):
            return self._start_request(request)
        system = parse(request)
        return self.start(system), system.name

    def status_request(self, request: Any, validate: Callable[..., None]) -> list[dict[str, Any]]:
        """Status rows for a status request. In one native call where the backplane has
        it, else ``validate(request, component="StatusRequest")``, then :meth:`status` of
        its ``name`` and ``username``."""
        if self._own("status"):
            return self._status_request(request)
        validate(request, component="StatusRequest")
        return self.status(request.get("name", None), request.get("username", None))

    def status_object(self, request: Any, validate: Callable[..., None], message: str) -> Any:
        """The :class:`tycho.client.TychoStatus` of a status request (``TychoClient.status``
        in process), with ``message``. Built natively from the rows where the backplane
        can (``_status_object``, with :meth:`status` its own and :meth:`status_request`
        not replaced), else from :meth:`status_request`'s rows."""
        if self._own("status") and type(self).status_request is Compute.status_request:
            native = getattr(self, "_status_object", None)
            if native is not None:
                return native(request, message)
        from tycho import _native

        return _native.TychoStatus(status="success", result=self.status_request(request, validate), message=message)

    def delete_request(self, request: Any, validate: Callable[..., None]) -> dict[str, Any]:
        """Delete the system of a delete request. In one native call where the backplane
        has it, else ``validate(request, component="DeleteRequest")``, then
        :meth:`delete` of its ``name``."""
        if self._own("delete"):
            return self._delete_request(request)
        validate(request, component="DeleteRequest")
        return self.delete(request["name"])

    def modify_request(self, request: Any, parse: Callable[[Any], Any]) -> dict[str, Any]:
        """Apply a modify request. In one native call where the backplane has it, else
        ``parse(request)`` (the checked :class:`tycho.model.ModifySystem`), then
        :meth:`modify`."""
        if self._own("modify"):
            return self._modify_request(request)
        return self.modify(parse(request))

    def _start_request(self, request: Any) -> tuple[dict[str, Any], str]:
        """The one native call of :meth:`start_request` (a backplane with ``start`` in
        ``_NATIVE_REQUESTS`` implements it)."""
        raise NotImplementedError("Implement _start_request for this backplane.")

    def _status_request(self, request: Any) -> list[dict[str, Any]]:
        """The one native call of :meth:`status_request`."""
        raise NotImplementedError("Implement _status_request for this backplane.")

    def _delete_request(self, request: Any) -> dict[str, Any]:
        """The one native call of :meth:`delete_request`."""
        raise NotImplementedError("Implement _delete_request for this backplane.")

    def _modify_request(self, request: Any) -> dict[str, Any]:
        """The one native call of :meth:`modify_request`."""
        raise NotImplementedError("Implement _modify_request for this backplane.")

    def delete(self, name: str, namespace: str="default") -> dict[str, Any]:
        """Delete every object of the system with GUID ``name``."""
        raise NotImplementedError("Implement delete for this backplane.")

    def status(self, name: Optional[str]=None, username: Optional[str]=None, namespace: str="default") -> list[dict[str, Any]]:
        """Status rows of running systems, by GUID, by user, or all."""
        raise NotImplementedError("Implement status for this backplane.")

    def modify(self, system_modify: Any) -> dict[str, Any]:
        """Apply a :class:`tycho.model.ModifySystem` to a running system."""
        raise NotImplementedError("Implement modify for this backplane.")

    def stop(self, name: str) -> dict[str, Any]:
        """Stop the system with GUID ``name``, keeping what it owns (see docs/operations/stop-resume.md)."""
        raise NotImplementedError("Implement stop for this backplane.")

    def resume(self, name: str) -> dict[str, Any]:
        """Resume the stopped system with GUID ``name``."""
        raise NotImplementedError("Implement resume for this backplane.")

    def touch(self, name: str) -> dict[str, Any]:
        """Record activity of the system with GUID ``name`` now (culling reads it)."""
        raise NotImplementedError("Implement touch for this backplane.")

    def cull(self, **options: Any) -> dict[str, Any]:
        """One culling pass (see docs/operations/culling.md); returns the report."""
        raise NotImplementedError("Implement cull for this backplane.")


def cull_options(
    max_age: Any = None,
    idle: Any = None,
    action: str = "stop",
    username: Optional[str] = None,
    app: Optional[str] = None,
    dry_run: bool = False,
    now: Any = None,
    activity_host: Optional[str] = None,
    concurrency: int = 4,
) -> dict[str, Any]:
    """The options of a culling pass as the core reads them: durations as text
    (``"1h30m"``), seconds or :class:`datetime.timedelta`; ``now`` (the injected clock)
    as RFC 3339 text or an aware :class:`datetime.datetime`."""
    import datetime

    def duration(value: Any) -> Any:
        if isinstance(value, datetime.timedelta):
            return str(int(value.total_seconds()))
        return value

    if isinstance(now, datetime.datetime):
        now = now.isoformat()
    return {
        "max_age": duration(max_age),
        "idle": duration(idle),
        "action": action,
        "username": username,
        "app": app,
        "dry_run": bool(dry_run),
        "now": now,
        "activity_host": activity_host,
        "concurrency": concurrency,
    }
