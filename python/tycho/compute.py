"""The compute back end interface (what a backplane such as Kubernetes implements)."""

import logging

logger = logging.getLogger(__name__)

__all__ = ["Compute"]


class Compute:
    """Abstraction of a compute fabric that runs systems."""

    def start(self, system, namespace="default"):
        """Start ``system`` (a :class:`tycho.model.System`); returns the start result."""
        raise NotImplementedError("Implement start for this backplane.")

    def delete(self, name, namespace="default"):
        """Delete every object of the system with GUID ``name``."""
        raise NotImplementedError("Implement delete for this backplane.")

    def status(self, name=None, username=None, namespace="default"):
        """Status rows of running systems, by GUID, by user, or all."""
        raise NotImplementedError("Implement status for this backplane.")

    def modify(self, system_modify):
        """Apply a :class:`tycho.model.ModifySystem` to a running system."""
        raise NotImplementedError("Implement modify for this backplane.")
