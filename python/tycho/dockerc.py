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
* ``modify(system_modify)`` → ``{"patches": [...]}`` (cpu/memory; labels are refused);
* ``stop(name)`` / ``resume(name)`` → ``{"name", "containers": n}`` (the containers
  stopped and started again; everything else is kept). ``touch`` and ``cull`` run on the
  Kubernetes backplane only (a container's labels cannot record activity).

Each of these is one native call (``tycho._native.docker_*``, ``system_*``), and so is
each request of ``tycho.actions`` on this backplane (``docker_start_request``,
``docker_status_request``, ``docker_delete_request``, ``docker_modify_request``: checked
against the API schema, parsed and run in the same call). Errors are
:class:`tycho.exceptions.TychoException` subclasses.
"""

import logging
from typing import Any, Optional

from tycho import _native
from tycho.compute import Compute, _native_requests, cull_options
from tycho.model import _NATIVE_MODEL

logger = logging.getLogger(__name__)

__all__ = ["DockerComposeCompute"]


@_native_requests
class DockerComposeCompute(Compute):
    """Systems as containers on one Docker Engine (see the module documentation).

    Every public operation is one native call; the requests of ``tycho.actions`` too
    (checked, parsed and run in the same call) unless a subclass or a ``mock.patch``
    replaces the method, which then gets the step-by-step path through it."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    _BACKPLANE = "docker-compose"

    def _native_args(self) -> tuple[Any, Optional[str]]:
        """The configuration of the native calls (no namespace on Docker)."""
        return self._conf(), None

    def _conf(self):
        return getattr(self.config, "conf", self.config)

    def start(self, system: Any, namespace: str="default") -> dict[str, Any]:
        """Create the system's network, volumes and containers (all or nothing).

        :raises StartException: a missing image, a taken port, an Engine failure; nothing is left.
        """
        return _native.docker_start(system, config=self._conf(), **_NATIVE_MODEL)

    def _start_request(self, request: Any) -> tuple[dict[str, Any], str]:
        """Check, parse, compile and start a start request (``tycho._native.docker_start_request``)."""
        return _native.docker_start_request(request, config=self._conf())

    def _status_request(self, request: Any) -> list[dict[str, Any]]:
        """Check a status request and read its rows (``tycho._native.docker_status_request``)."""
        return _native.docker_status_request(request, config=self._conf())

    def _status_object(self, request: Any, message: str) -> Any:
        """The TychoStatus of a status request (``tycho._native.docker_status_object``):
        the rows become TychoService objects natively, with no dict of them."""
        return _native.docker_status_object(request, message, config=self._conf())

    def _delete_request(self, request: Any) -> dict[str, Any]:
        """Check a delete request and delete its system (``tycho._native.docker_delete_request``)."""
        return _native.docker_delete_request(request, config=self._conf())

    def _modify_request(self, request: Any) -> dict[str, Any]:
        """Check a modify request and apply it (``tycho._native.docker_modify_request``)."""
        return _native.docker_modify_request(request, config=self._conf())

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
        return _native.docker_modify(system_modify, config=self._conf(), **_NATIVE_MODEL)

    def stop(self, name: str) -> dict[str, Any]:
        """Stop the containers of the system with GUID ``name`` (kept). Idempotent."""
        return _native.system_stop("docker-compose", name, config=self._conf())

    def resume(self, name: str) -> dict[str, Any]:
        """Start the stopped containers of the system with GUID ``name``. Idempotent."""
        return _native.system_resume("docker-compose", name, config=self._conf())

    def touch(self, name: str) -> dict[str, Any]:
        """Refused: the Docker backplane cannot record activity (TychoException)."""
        return _native.system_touch("docker-compose", name)

    def cull(self, **options: Any) -> dict[str, Any]:
        """Refused: culling runs on the Kubernetes backplane (TychoException)."""
        return _native.system_cull("docker-compose", cull_options(**options))
