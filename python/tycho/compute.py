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
