"""Run systems on Kubernetes.

The cluster executor lives in the native core (``src/exec/kube``, kube-rs on tokio). This
module is a thin adapter: each method calls the matching ``tycho._native.kube_*``
function (every build carries the executor). Constructing :class:`KubernetesCompute` never loads a
kubeconfig or contacts a cluster; that happens on the first operation, inside the
executor (in-cluster when ``KUBERNETES_SERVICE_HOST`` is set, else ``KUBECONFIG`` or
``~/.kube/config``), with one client per process, made again after ``fork()``.

Namespace: the one set with ``compute.namespace = ...``, else ``NAMESPACE``, else the
pod's service-account namespace, else the kubeconfig context's, else ``default``.

Native functions this adapter calls (keyword arguments after ``*``):

* ``kube_start(system: dict, *, config, namespace) -> dict`` — ``system`` is
  :meth:`tycho.model.System.to_dict`; returns ``{"name", "sid", "containers", "conn_string"}``.
* ``kube_status(name: str|None, username: str|None, *, namespace) -> list[dict]``
* ``kube_delete(name: str, *, namespace) -> dict``
* ``kube_modify(modify: dict, *, config, namespace) -> dict`` — ``modify`` is
  :meth:`tycho.model.ModifySystem.to_dict`; returns ``{"patches": [...]}``.
* ``kube_namespace() -> str`` — the namespace used when none is given.

``namespace`` is None unless this adapter knows it (set explicitly, ``NAMESPACE`` or
the service-account file: the core's rule, ``tycho._native.environment_namespace``);
the executor then uses the kubeconfig context's.
"""

import logging
from typing import Any, Optional

from tycho import _native
from tycho.compute import Compute
from tycho.model import ModifySystem, System

logger = logging.getLogger(__name__)

__all__ = ["KubernetesCompute"]


class KubernetesCompute(Compute):
    """A Kubernetes orchestrator implementation (see the module documentation)."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.try_minikube = True
        self._namespace: Optional[str] = None

    @property
    def namespace(self) -> str:
        """The namespace systems run in (see the module documentation). Reading it may
        load the cluster configuration; setting it overrides every other source."""
        requested = self._requested_namespace()
        if requested:
            return requested
        return _native.kube_namespace()

    @namespace.setter
    def namespace(self, value: Optional[str]) -> None:
        self._namespace = value

    def _requested_namespace(self):
        """The explicit namespace, else NAMESPACE, else the service-account file; else None."""
        return _native.environment_namespace(self._namespace or None)

    def get_namespace(self, namespace: str="default") -> str:
        """The namespace of the service account mounted into this pod, else ``namespace``."""
        return _native.environment_namespace(None, variable=False) or namespace

    def _conf(self):
        return getattr(self.config, "conf", self.config)

    def start(self, system: System, namespace: str="default") -> dict[str, Any]:
        """Create the system's Deployment, NetworkPolicy, Services and (when the principal
        has an access token and ``tycho.compute.system.access_token_env`` is ``secret``)
        its token Secret, which the containers read ``ACCESS_TOKEN`` from.

        :returns: ``{"name", "sid", "containers": {container: {"ip_address", <port name>: port}}, "conn_string"}``
        :raises StartException: when starting fails.
        """
        return _native.kube_start(system.to_dict(), config=self._conf(), namespace=self._requested_namespace())

    def delete(self, name: str, namespace: str="default") -> dict[str, Any]:
        """Delete every object labelled ``tycho-guid=<name>``. Returns ``{}``."""
        return _native.kube_delete(name, namespace=self._requested_namespace())

    def status(self, name: Optional[str]=None, username: Optional[str]=None, namespace: str="default") -> list[dict[str, Any]]:
        """Status rows of tycho systems: by GUID ``name``, by ``username``, or all."""
        return _native.kube_status(name, username, namespace=self._requested_namespace())

    def modify(self, system_modify: ModifySystem) -> dict[str, Any]:
        """Patch labels and cpu/memory of a running system. Returns ``{"patches": [...]}``."""
        return _native.kube_modify(system_modify.to_dict(), config=self._conf(), namespace=self._requested_namespace())
