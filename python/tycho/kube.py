"""Run systems on Kubernetes.

The cluster executor lives in the native core (``src/kube``, kube-rs on tokio). This
module is a thin adapter: each method calls the matching ``tycho._native.kube_*``
function. **Builds without the executor** (the native module has no ``kube_start``
etc.) raise :class:`tycho.exceptions.TychoException` with the message
``"the Kubernetes executor is not available in this build"`` from every cluster
operation; nothing is faked. Constructing :class:`KubernetesCompute` never loads a
kubeconfig or contacts a cluster; that happens on the first operation, inside the
executor (in-cluster when ``KUBERNETES_SERVICE_HOST`` is set, else ``KUBECONFIG`` or
``~/.kube/config``), with one client per process, made again after ``fork()``.

Namespace: the one set with ``compute.namespace = ...``, else ``NAMESPACE``, else the
pod's service-account namespace, else the kubeconfig context's, else ``default``.

Native functions this adapter calls (keyword arguments after ``*``):

* ``kube_start(system: dict, *, config, namespace) -> dict`` — ``system`` is
  :meth:`tycho.model.System.to_dict`; returns ``{"name", "sid", "containers", "conn_string"}``.
* ``kube_status(name: str|None, username: str|None, *, config, namespace) -> list[dict]``
* ``kube_delete(name: str, *, config, namespace) -> dict``
* ``kube_modify(modify: dict, *, config, namespace) -> dict`` — ``modify`` is
  :meth:`tycho.model.ModifySystem.to_dict`; returns ``{"patches": [...]}``.
* ``kube_namespace() -> str`` — the namespace used when none is given.

``namespace`` is None unless this adapter knows it (set explicitly, ``NAMESPACE`` or
the service-account file); the executor then uses the kubeconfig context's.
"""

import logging
import os

from tycho import _native
from tycho.compute import Compute
from tycho.exceptions import TychoException

logger = logging.getLogger(__name__)

__all__ = ["KubernetesCompute", "EXECUTOR_UNAVAILABLE"]

EXECUTOR_UNAVAILABLE = "the Kubernetes executor is not available in this build"

_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _executor(function_name):
    fn = getattr(_native, function_name, None)
    if fn is None:
        raise TychoException(EXECUTOR_UNAVAILABLE, f"tycho._native has no {function_name}")
    return fn


class KubernetesCompute(Compute):
    """A Kubernetes orchestrator implementation (see the module documentation)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.try_minikube = True
        self._namespace = None

    @staticmethod
    def executor_available():
        """True when this build carries the native Kubernetes executor."""
        return all(hasattr(_native, f"kube_{op}") for op in ("start", "status", "delete", "modify"))

    @property
    def namespace(self):
        """The namespace systems run in (see the module documentation). Reading it may
        load the cluster configuration; setting it overrides every other source."""
        requested = self._requested_namespace()
        if requested:
            return requested
        fn = getattr(_native, "kube_namespace", None)
        return fn() if fn is not None else "default"

    @namespace.setter
    def namespace(self, value):
        self._namespace = value

    def _requested_namespace(self):
        """The explicit namespace, else NAMESPACE, else the service-account file; else None."""
        if self._namespace:
            return self._namespace
        from_env = os.environ.get("NAMESPACE")
        if from_env:
            return from_env
        from_file = self.get_namespace(namespace=None)
        return from_file or None

    def get_namespace(self, namespace="default"):
        """The namespace of the service account mounted into this pod, else ``namespace``."""
        try:
            with open(_NAMESPACE_FILE, "r") as stream:
                for line in stream:
                    return line.strip() or namespace
                return namespace
        except OSError:
            logger.debug("-- downward api namespace lookup failed.")
        return namespace

    def _conf(self):
        return getattr(self.config, "conf", self.config)

    def start(self, system, namespace="default"):
        """Create the system's Deployment, NetworkPolicy, Services and (when the principal
        has an access token and ``tycho.compute.system.access_token_env`` is ``secret``)
        its token Secret, which the containers read ``ACCESS_TOKEN`` from.

        :returns: ``{"name", "sid", "containers": {container: {"ip_address", <port name>: port}}, "conn_string"}``
        :raises TychoException: without the executor; StartException when starting fails.
        """
        fn = _executor("kube_start")
        return fn(system.to_dict(), config=self._conf(), namespace=self._requested_namespace())

    def delete(self, name, namespace="default"):
        """Delete every object labelled ``tycho-guid=<name>``. Returns ``{}``."""
        fn = _executor("kube_delete")
        return fn(name, config=self._conf(), namespace=self._requested_namespace())

    def status(self, name=None, username=None, namespace="default"):
        """Status rows of tycho systems: by GUID ``name``, by ``username``, or all."""
        fn = _executor("kube_status")
        return fn(name, username, config=self._conf(), namespace=self._requested_namespace())

    def modify(self, system_modify):
        """Patch labels and cpu/memory of a running system. Returns ``{"patches": [...]}``."""
        fn = _executor("kube_modify")
        return fn(system_modify.to_dict(), config=self._conf(), namespace=self._requested_namespace())
