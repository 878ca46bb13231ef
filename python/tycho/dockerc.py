"""Run systems on this machine's Docker Engine (the ``docker-compose`` backplane).

tycho-api 1.17.3 shipped ``DockerComposeCompute`` here: it wrote the compose text into
``apps/<guid>/`` and ran ``docker-compose up`` in a thread. This one is a thin adapter
over the Docker backplane of the native core (``src/exec/docker``: the Engine API through
bollard over ``DOCKER_HOST``, else ``/var/run/docker.sock``; no subprocess, no
docker-compose, no state on disk — systems are found through their labels). It takes
the same System model and returns the Kubernetes backplane's result shapes:

* ``start(system)`` → ``{"name", "sid", "containers": {service: {"ip_address", "port-1"}}, "conn_string"}``
  (address and host port of each published port; bound to 127.0.0.1 unless
  ``TYCHO_DOCKER_BIND_ADDRESS`` / ``tycho.docker.bind_address`` says otherwise);
* ``status(name, username)`` → the Kubernetes status rows; ``reasons=True`` adds
  ``reason`` (why a system is not ready) to each row;
* ``delete(name)`` → ``{}`` (containers and network; named volumes are kept);
* ``modify(system_modify)`` → ``{"patches": [...]}`` (cpu/memory; labels are refused).

Errors are :class:`tycho.exceptions.TychoException` subclasses.
"""

import logging
from typing import Any, Optional

from tycho import _native
from tycho.compute import Compute

logger = logging.getLogger(__name__)

__all__ = ["DockerComposeCompute"]


class DockerComposeCompute(Compute):
    """Systems as containers on one Docker Engine (see the module documentation)."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    def _conf(self):
        return getattr(self.config, "conf", self.config)

    def start(self, system: Any, namespace: str="default") -> dict[str, Any]:
        """Create the system's network, volumes and containers (all or nothing).

        :raises StartException: a missing image, a taken port, an Engine failure; nothing is left.
        """
        return _native.docker_start(system.to_dict(), config=self._conf())

    def status(self, name: Optional[str]=None, username: Optional[str]=None, namespace: str="default", reasons: bool=False) -> list[dict[str, Any]]:
        """Status rows of tycho systems: by GUID ``name``, by ``username``, or all.

        :param reasons: add ``reason`` to each row: why the system is not ready, else None.
        """
        return _native.docker_status(name, username, config=self._conf(), reasons=reasons)

    def delete(self, name: str, namespace: str="default") -> dict[str, Any]:
        """Remove the containers and network of the system with GUID ``name``. Returns ``{}``."""
        return _native.docker_delete(name, config=self._conf())

    def modify(self, system_modify: Any) -> dict[str, Any]:
        """Update cpu/memory of a running system. Returns ``{"patches": [...]}``.

        :raises ModifyException: labels were given (the Engine cannot relabel a container).
        """
        return _native.docker_modify(system_modify.to_dict(), config=self._conf())
