"""The compute back end interface (what a backplane such as Kubernetes implements)."""

import logging
from typing import Any, Callable, Optional

logger = logging.getLogger(__name__)

__all__ = ["Compute"]


class Compute:
    """Abstraction of a compute fabric that runs systems."""

    def start(self, system: Any, namespace: str="default") -> dict[str, Any]:
        """Start ``system`` (a :class:`tycho.model.System`); returns the start result."""
        raise NotImplementedError("Implement start for this backplane.")

    def start_request(self, request: Any, parse: Callable[[Any], Any]) -> tuple[dict[str, Any], str]:
        """Start the system of a start request: ``parse(request)`` (the checked
        :class:`tycho.model.System`), then :meth:`start`. Returns ``(result, system
        name)``. A backplane may do it all at once (Kubernetes: one native call)."""
        system = parse(request)
        return self.start(system), system.name

    def status_request(self, request: Any, validate: Callable[..., None]) -> list[dict[str, Any]]:
        """Status rows for a status request: ``validate(request, component="StatusRequest")``,
        then :meth:`status` of its ``name`` and ``username``."""
        validate(request, component="StatusRequest")
        return self.status(request.get("name", None), request.get("username", None))


    def status_object(self, request: Any, validate: Callable[..., None], message: str) -> Any:
        """The :class:`tycho.client.TychoStatus` of a status request (``TychoClient.status``
        in process): :meth:`status_request`'s rows with ``message``. A backplane may
        build it natively (``KubernetesCompute``)."""
        from tycho import _native

        return _native.TychoStatus(status="success", result=self.status_request(request, validate), message=message)
    def delete_request(self, request: Any, validate: Callable[..., None]) -> dict[str, Any]:
        """Delete the system of a delete request: ``validate(request, component="DeleteRequest")``,
        then :meth:`delete` of its ``name``."""
        validate(request, component="DeleteRequest")
        return self.delete(request["name"])

    def delete(self, name: str, namespace: str="default") -> dict[str, Any]:
        """Delete every object of the system with GUID ``name``."""
        raise NotImplementedError("Implement delete for this backplane.")

    def status(self, name: Optional[str]=None, username: Optional[str]=None, namespace: str="default") -> list[dict[str, Any]]:
        """Status rows of running systems, by GUID, by user, or all."""
        raise NotImplementedError("Implement status for this backplane.")

    def modify_request(self, request: Any, parse: Callable[[Any], Any]) -> dict[str, Any]:
        """Apply a modify request: ``parse(request)`` (the checked
        :class:`tycho.model.ModifySystem`), then :meth:`modify`."""
        return self.modify(parse(request))

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
