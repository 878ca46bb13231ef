"""The compute back end interface (what a backplane such as Kubernetes implements)."""

import logging
from typing import Any, Optional

logger = logging.getLogger(__name__)

__all__ = ["Compute"]


class Compute:
    """Abstraction of a compute fabric that runs systems."""

    def start(self, system: Any, namespace: str="default") -> dict[str, Any]:
        """Start ``system`` (a :class:`tycho.model.System`); returns the start result."""
        raise NotImplementedError("Implement start for this backplane.")

    def delete(self, name: str, namespace: str="default") -> dict[str, Any]:
        """Delete every object of the system with GUID ``name``."""
        raise NotImplementedError("Implement delete for this backplane.")

    def status(self, name: Optional[str]=None, username: Optional[str]=None, namespace: str="default") -> list[dict[str, Any]]:
        """Status rows of running systems, by GUID, by user, or all."""
        raise NotImplementedError("Implement status for this backplane.")

    def modify(self, system_modify: Any) -> dict[str, Any]:
        """Apply a :class:`tycho.model.ModifySystem` to a running system."""
        raise NotImplementedError("Implement modify for this backplane.")
