"""Python client of the Tycho API.

:class:`TychoClient` talks to a Tycho REST API when the environment variable
``REST_API`` is ``true`` (POST ``{url}/system/<service>``, natively, bounded by
:attr:`TychoClient.timeout`), and otherwise calls the request handlers of
:mod:`tycho.actions` in process. The client and its result types (:class:`TychoSystem`,
:class:`TychoStatus`, :class:`TychoService`) are native classes of ``tycho._native``;
:class:`TychoClient` here subclasses the native one. Public methods call each other through attribute
lookup, so ``mock.patch.object(TychoClient, "request", ...)`` intercepts everything.

``astart``/``astatus``/``adelete``/``amodify`` are awaitable variants for asyncio code:
each runs its blocking counterpart on a worker thread of the native (tokio) runtime, so
several awaited calls proceed in parallel wherever the work releases the GIL.
"""

import json
import logging
import os
from typing import Any, Callable, Iterable, Mapping, Optional

from tycho import _native
from tycho.actions import (  # noqa: F401 - the original module's names
    DeleteSystemResource,
    ModifySystemResource,
    ResumeSystemResource,
    StartSystemResource,
    StatusSystemResource,
    StopSystemResource,
    TouchSystemResource,
)
from tycho.exceptions import StartException, TychoException  # noqa: F401 - the original module's names
from tycho.tycho_utils import TemplateUtils

logger = logging.getLogger(__name__)

__all__ = ["TychoService", "TychoStatus", "TychoSystem", "TychoClient", "TychoClientFactory", "TychoApps"]

#: Multipliers of the decimal quantity suffixes (kept from tycho-api 1.17.3's module;
#: ``TychoService.get_utilization`` applies the same rule natively).
mem_converter: dict[str, Callable[[float], float]] = {
    "K": lambda v: v * 10**3,
    "M": lambda v: v * 10**6,
    "G": lambda v: v * 10**9,
    "T": lambda v: v * 10**12,
    "P": lambda v: v * 10**15,
    "E": lambda v: v * 10**18,
}

# Imported on first use (they cost start-up time in every appstore process):
# ``tycho.client.shutil`` and friends still resolve, e.g. for mock.patch.
_LAZY_MODULES = ("shutil", "tempfile", "traceback")


def __getattr__(name):
    if name in _LAZY_MODULES:
        return __import__(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The result types are native (src/bindings/results.rs): a status read in process goes
# from the executor's rows straight into TychoService objects. Constructors, attributes
# and repr are the original's; the classes can be subclassed.
TychoService = _native.TychoService
TychoStatus = _native.TychoStatus
TychoSystem = _native.TychoSystem


class TychoClient(_native.TychoClient):
    """Python client of the Tycho dynamic application deployment API.

    ``TychoClient(url="http://localhost:5000")``: ``url`` is where the REST API is
    reached when ``REST_API=true`` (:attr:`url` is ``{url}/system``); otherwise each
    request goes to the in-process handlers in :attr:`actions`. The operations
    (:meth:`request`, :meth:`start`, :meth:`status`, :meth:`delete`, :meth:`modify`,
    :meth:`stop`, :meth:`resume`, :meth:`touch`, :meth:`parse_env`,
    :meth:`format_name`) are native (src/bindings/client.rs) and call each other through
    attribute lookup, so patching :meth:`request` on this class intercepts them all.
    """

    #: Seconds to wait for the REST API to answer one request.
    timeout: float = 300

    # ---------------------------------------------------------------- asyncio

    async def astart(self, request: Mapping[str, Any]) -> TychoSystem:
        """``await``-able :meth:`start`, run on a native worker thread (so several run in parallel)."""
        return await _native.aio_call(self.start, request)

    async def astatus(self, request: Mapping[str, Any]) -> TychoStatus:
        """``await``-able :meth:`status`."""
        return await _native.aio_call(self.status, request)

    async def adelete(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """``await``-able :meth:`delete`."""
        return await _native.aio_call(self.delete, request)

    async def amodify(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """``await``-able :meth:`modify`."""
        return await _native.aio_call(self.modify, request)

    async def astop(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """``await``-able :meth:`stop`."""
        return await _native.aio_call(self.stop, request)

    async def aresume(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """``await``-able :meth:`resume`."""
        return await _native.aio_call(self.resume, request)

    async def atouch(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """``await``-able :meth:`touch`."""
        return await _native.aio_call(self.touch, request)

    def up(self, name: str, system: Mapping[str, Any], settings: str="") -> None:
        """Start a system from a docker-compose structure and print its endpoint (CLI helper).

        :param name: Name of the system.
        :param system: Docker-compose structure (dict).
        :param settings: Text of a .env file.
        """
        services = {}
        for container_name, container in system["services"].items():
            for port in container.get("ports", []) or []:
                port = str(port)
                services[container_name] = {"port": int(port.split(":")[1] if ":" in port else port)}
        request = {
            "name": self.format_name(name),
            "principal": '{"username": "renci"}',
            "serviceaccount": "default",
            "env": self.parse_env(settings),
            "system": system,
            "services": services,
        }
        response = self.start(request)
        logger.debug("client.up - response: %s", response)
        if response.status == "error":
            print(response.message)
            return
        format_string = "{:<30} {:<35} {:<15} {:<7}"
        print(format_string.format("SERVICE", "GUID", "IP_ADDRESS", "PORT"))
        for service in response.services:
            print(
                format_string.format(
                    TemplateUtils.trunc(service.name, max_len=28),
                    TemplateUtils.trunc(response.identifier, max_len=33),
                    str(service.ip_address),
                    str(service.port),
                )
            )
            break

    def list(self, name: Optional[str], terse: bool=False) -> None:
        """Print the status of running systems (CLI helper).

        :param name: GUID of a system, or None for all.
        :param terse: Print only GUIDs.
        """
        request = {"name": self.format_name(name)} if name else {}
        request["username"] = "renci"
        response = self.status(request)
        logger.debug("client.list - response: %s", response)
        if response.status == "success":
            if terse:
                for service in response.services:
                    print(service.identifier)
            elif len(response.services) == 0:
                print("None running")
            else:
                format_string = "{:<30} {:<35} {:<15} {:<7} {:<1}"
                print(format_string.format("SYSTEM", "GUID", "IP_ADDRESS", "PORT", "CREATION_TIME"))
                for service in response.services:
                    print(
                        format_string.format(
                            TemplateUtils.trunc(str(service.name), max_len=28),
                            TemplateUtils.trunc(str(service.identifier), max_len=33),
                            str(service.ip_address),
                            str(service.port),
                            str(service.creation_time),
                        )
                    )
        elif response.status == "error":
            print(response)

    def down(self, names: Iterable[str]) -> None:
        """Delete systems by GUID, printing each name deleted (CLI helper)."""
        try:
            for name in names:
                response = self.delete({"name": self.format_name(name)})
                if response.get("status", None) == "success":
                    print(f"{name}")
                else:
                    print(json.dumps(response, indent=2))
        except Exception:
            import traceback

            traceback.print_exc()


class TychoClientFactory:
    """Locate a Tycho API instance.

    Construction touches nothing. :meth:`get_client` reads the API's Service with the
    native Kubernetes executor (``tycho._native.kube_service_url``): a client for
    ``http://<name>:<its first port>``, or for ``default_url`` when there is no such
    Service or the cluster cannot be read.
    """

    def __init__(self) -> None:
        self.api = None

    def get_client(self, name: str="tycho-api", namespace: str="default", default_url: str="http://localhost:5000") -> TychoClient:
        """A :class:`TychoClient` for the Tycho API service ``name`` in ``namespace``."""
        namespace = _native.environment_namespace(None, variable=False) or namespace
        url = None
        try:
            url = _native.kube_service_url(name, namespace)
        except Exception as e:
            logger.info("cannot find %s in namespace %s: %s", name, namespace, e)
        if not url:
            url = default_url
        logger.info("creating tycho client with url: %s", url)
        return TychoClient(url=url)


class TychoApps:
    """App metadata from the app-support-prototype repository (needs ``git`` and the network)."""

    def __init__(self, app: str) -> None:
        self.app = app
        self.repo_url = "https://github.com/heliumplusdatastage/app-support-prototype.git"
        self.repo_name = "app-support-prototype"
        self.apps_dir = "dockstore-yaml-proposals"
        self.source_file = "docker-compose.yaml"
        self.env = ".env"
        self.metadata: dict[str, Any] = {}

    def deleterepo(self, repo_path: str) -> None:
        import shutil

        shutil.rmtree(repo_path, ignore_errors=True)

    def getmetadata(self) -> dict[str, Any]:
        """``{"System": compose dict, "Settings": .env text}`` for :attr:`app`.

        :raises TychoException: when git is not installed or the clone fails.
        """
        import shutil
        import tempfile

        git = shutil.which("git")
        if git is None:
            raise TychoException("TychoApps.getmetadata needs the git command to clone " + self.repo_url)
        import subprocess  # nosec B404 - fixed argv

        workdir = tempfile.mkdtemp(prefix="tycho-apps-")
        repo_path = os.path.join(workdir, self.repo_name)
        try:
            done = subprocess.run(  # nosec B603
                [git, "clone", "--depth", "1", self.repo_url, repo_path], capture_output=True, text=True, timeout=300
            )
            if done.returncode != 0:
                raise TychoException(f"git clone of {self.repo_url} failed", done.stderr)
            app_path = os.path.join(repo_path, self.apps_dir, self.app)
            system_path = os.path.join(app_path, self.source_file)
            if os.path.exists(system_path):
                with open(system_path, "r") as stream:
                    docs = _native.yaml_load_all(stream.read())
                self.metadata["System"] = docs[0] if docs else None
                env_path = os.path.join(app_path, self.env)
                if os.path.exists(env_path):
                    with open(env_path, "r") as stream:
                        self.metadata["Settings"] = stream.read()
        finally:
            self.deleterepo(workdir)
        return self.metadata
