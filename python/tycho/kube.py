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

* ``kube_start(system, *, config, namespace, skip, to_plain) -> dict`` — ``system`` is
  the :class:`tycho.model.System` itself, converted in the call as its ``to_dict()``
  gives it (``skip``/``to_plain``: ``tycho.model._NATIVE_MODEL``), or that dict;
  returns ``{"name", "sid", "containers", "conn_string"}``.
* ``kube_start_request(request: dict, *, config, namespace) -> (dict, str)`` — a start
  request checked, parsed, compiled and started in one call; returns ``kube_start``'s
  result and the system's name.
* ``kube_status_request(request, *, namespace)``, ``kube_delete_request(request, *,
  namespace)``, ``kube_modify_request(request, *, config, namespace)`` — a status,
  delete or modify request checked and run in one call.
* ``kube_status(name: str|None, username: str|None, *, namespace) -> list[dict]``
* ``kube_delete(name: str, *, namespace) -> dict``
* ``kube_modify(modify, *, config, namespace, skip, to_plain) -> dict`` — ``modify`` is
  the :class:`tycho.model.ModifySystem` (or its ``to_dict()``); returns ``{"patches": [...]}``.
* ``kube_namespace() -> str`` — the namespace used when none is given.
* ``system_stop|system_resume("kubernetes", name, *, config, namespace) -> dict``,
  ``system_touch("kubernetes", name, *, namespace)``, ``system_cull("kubernetes",
  options, *, namespace)`` — stop, resume, touch and culling
  (docs/operations/stop-resume.md, docs/operations/culling.md).

``namespace`` is the one set with ``compute.namespace = ...``, else None: the executor
resolves it (``NAMESPACE``, the service-account file, the kubeconfig context's), so every
public operation is one native call. A subclass or a ``mock.patch`` that replaces
``start``, ``status``, ``delete`` or ``modify`` gets the step-by-step request path
through it (:meth:`tycho.compute.Compute.start_request` and the others).
"""

import logging
from typing import Any, Optional

from tycho import _native
from tycho.compute import Compute, _native_requests, cull_options
from tycho.model import _NATIVE_MODEL, ModifySystem, System

logger = logging.getLogger(__name__)

__all__ = ["KubernetesCompute"]


@_native_requests
class KubernetesCompute(Compute):
    """A Kubernetes orchestrator implementation (see the module documentation).

    Every public operation is one native call. The namespace passed is the explicit one
    (``compute.namespace = ...``) or None: the executor resolves it (NAMESPACE, the pod's
    service-account namespace, the kubeconfig context's), the core's one rule."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.try_minikube = True
        self._namespace: Optional[str] = None

    @property
    def namespace(self) -> str:
        """The namespace systems run in (see the module documentation). Reading it may
        load the cluster configuration; setting it overrides every other source."""
        return self._namespace or _native.kube_namespace()

    @namespace.setter
    def namespace(self, value: Optional[str]) -> None:
        self._namespace = value

    def _explicit(self) -> Optional[str]:
        """The namespace set with ``compute.namespace = ...``, else None."""
        return self._namespace or None

    def get_namespace(self, namespace: str="default") -> str:
        """The namespace of the service account mounted into this pod, else ``namespace``."""
        return _native.environment_namespace(None, variable=False) or namespace

    _BACKPLANE = "kubernetes"

    def _native_args(self) -> tuple[Any, Optional[str]]:
        """The configuration and the explicit namespace of the native calls."""
        return self._conf(), self._explicit()

    def _conf(self):
        return getattr(self.config, "conf", self.config)

    def start(self, system: System, namespace: str="default") -> dict[str, Any]:
        """Create the system's Deployment, NetworkPolicy, Services and (when the principal
        has an access token and ``tycho.compute.system.access_token_env`` is ``secret``)
        its token Secret, which the containers read ``ACCESS_TOKEN`` from.

        :returns: ``{"name", "sid", "containers": {container: {"ip_address", <port name>: port}}, "conn_string"}``
        :raises StartException: when starting fails.
        """
        return _native.kube_start(system, config=self._conf(), namespace=self._explicit(), **_NATIVE_MODEL)

    def _start_request(self, request: Any) -> tuple[dict[str, Any], str]:
        """Check, parse, compile and start a start request (``tycho._native.kube_start_request``)."""
        return _native.kube_start_request(request, config=self._conf(), namespace=self._explicit())

    def _status_request(self, request: Any) -> list[dict[str, Any]]:
        """Check a status request and read its rows (``tycho._native.kube_status_request``)."""
        return _native.kube_status_request(request, namespace=self._explicit())

    def _status_object(self, request: Any, message: str) -> Any:
        """The TychoStatus of a status request (``tycho._native.kube_status_object``): the
        rows become TychoService objects natively, with no dict of them."""
        return _native.kube_status_object(request, message, namespace=self._explicit())

    def _delete_request(self, request: Any) -> dict[str, Any]:
        """Check a delete request and delete its system (``tycho._native.kube_delete_request``)."""
        return _native.kube_delete_request(request, namespace=self._explicit())

    def _modify_request(self, request: Any) -> dict[str, Any]:
        """Check a modify request and apply it (``tycho._native.kube_modify_request``)."""
        return _native.kube_modify_request(request, config=self._conf(), namespace=self._explicit())

    def delete(self, name: str, namespace: str="default") -> dict[str, Any]:
        """Delete every object labelled ``tycho-guid=<name>``. Returns ``{}``."""
        return _native.kube_delete(name, namespace=self._explicit())

    def status(self, name: Optional[str]=None, username: Optional[str]=None, namespace: str="default") -> list[dict[str, Any]]:
        """Status rows of tycho systems: by GUID ``name``, by ``username``, or all."""
        return _native.kube_status(name, username, namespace=self._explicit())

    def modify(self, system_modify: ModifySystem) -> dict[str, Any]:
        """Patch labels and cpu/memory of a running system. Returns ``{"patches": [...]}``."""
        return _native.kube_modify(system_modify, config=self._conf(), namespace=self._explicit(), **_NATIVE_MODEL)

    def stop(self, name: str) -> dict[str, Any]:
        """Scale the system with GUID ``name`` to 0, keeping its Services, token Secret,
        claims and NetworkPolicy; the replica count is kept in an annotation. Idempotent.
        Returns ``{"name", "deployments": {name: replicas}}``."""
        return _native.system_stop("kubernetes", name, config=self._conf(), namespace=self._explicit())

    def resume(self, name: str) -> dict[str, Any]:
        """Scale the stopped system with GUID ``name`` back to the replica count it had
        (its last activity becomes now). Idempotent."""
        return _native.system_resume("kubernetes", name, config=self._conf(), namespace=self._explicit())

    def touch(self, name: str) -> dict[str, Any]:
        """Record activity of the system with GUID ``name`` now (``TYCHO_NOW`` when set)."""
        return _native.system_touch("kubernetes", name, namespace=self._explicit())

    def cull(self, **options: Any) -> dict[str, Any]:
        """One culling pass: stop (or delete, ``action="delete"``) the systems idle longer
        than ``idle`` or older than ``max_age``; keyword arguments as
        :func:`tycho.compute.cull_options`. Returns ``{"now", "action", "dry_run",
        "culled": [rows with reason], "kept"}``."""
        return _native.system_cull("kubernetes", cull_options(**options), namespace=self._explicit())
