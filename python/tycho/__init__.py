"""tycho: compile docker-compose systems into Kubernetes objects and run them.

A Rust core (``tycho._native``) under the module layout of tycho-api 1.17.3.
Importing tycho or any submodule touches no cluster, kubeconfig or network.

Modules (as in tycho-api 1.17.3):

* ``tycho.client`` — TychoClient, TychoClientFactory, TychoSystem, TychoStatus, TychoService, TychoApps
* ``tycho.context`` — TychoContext, NullContext, ContextFactory, Principal (the app registry)
* ``tycho.core`` — Tycho (parse, parse_modify, get_compute)
* ``tycho.model`` — System, Container, Service, Volumes, Limits, Probe, HttpProbe, TcpProbe, ModifySystem
* ``tycho.config`` — Config
* ``tycho.exceptions`` — TychoException, StartException, DeleteException, ModifyException, ContextException
* ``tycho.tycho_utils`` — TemplateUtils, NetworkUtils, Resource
* ``tycho.actions`` — StartSystemResource, StatusSystemResource, DeleteSystemResource, ModifySystemResource
* ``tycho.kube`` — KubernetesCompute (cluster operations need the native executor)
* ``tycho.compute``, ``tycho.factory`` — Compute, ComputeFactory

Not in the original: ``tycho.metrics()``, the process's metrics as Prometheus text.
"""

from tycho._native import __version__
from tycho._native import metrics_text as _metrics_text

__all__ = ["__version__", "metrics"]


def metrics() -> str:
    """This process's tycho metrics in the OpenMetrics text format (what ``tycho api``
    serves at ``/metrics``): executor operations by outcome, systems by app, Kubernetes
    API requests by verb and code, the watch cache's state. For a web application to
    publish, e.g. from a Django view with content type
    ``application/openmetrics-text; version=1.0.0; charset=utf-8``."""
    return _metrics_text()
