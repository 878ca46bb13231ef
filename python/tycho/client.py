"""Python client of the Tycho API.

:class:`TychoClient` talks to a Tycho REST API when the environment variable
``REST_API`` is ``true`` (POST ``{url}/system/<service>`` with urllib, bounded by
:attr:`TychoClient.timeout`), and otherwise calls the request handlers of
:mod:`tycho.actions` in process. Public methods call each other through attribute
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
from tycho.actions import (
    DeleteSystemResource,
    ModifySystemResource,
    ResumeSystemResource,
    StartSystemResource,
    StatusSystemResource,
    StopSystemResource,
    TouchSystemResource,
)
from tycho.exceptions import StartException, TychoException
from tycho.tycho_utils import TemplateUtils, brief, to_json

logger = logging.getLogger(__name__)

__all__ = ["TychoService", "TychoStatus", "TychoSystem", "TychoClient", "TychoClientFactory", "TychoApps"]

mem_converter: dict[str, Callable[[float], float]] = {
    "K": lambda v: v * 10**3,
    "M": lambda v: v * 10**6,
    "G": lambda v: v * 10**9,
    "T": lambda v: v * 10**12,
    "P": lambda v: v * 10**15,
    "E": lambda v: v * 10**18,
}

def _millicores(value):
    text = str(value).strip()
    if text.endswith("m"):
        return int(float(text[:-1]))
    return int(round(float(text) * 1000))


def _bytes(value):
    """Bytes in a Kubernetes quantity; binary suffixes are read as decimal ("1Gi" is 1e9),
    as tycho-api 1.17.3 did."""
    text = str(value).strip().replace("i", "")
    if not text:
        return 0
    suffix = text[-1].upper()
    if suffix in mem_converter:
        number = float(text[:-1])
        return mem_converter[suffix](number)
    return float(text)


# Imported on first use (they cost start-up time in every appstore process):
# ``tycho.client.shutil`` and friends still resolve, e.g. for mock.patch.
_LAZY_MODULES = ("shutil", "tempfile", "traceback")


def __getattr__(name):
    if name in _LAZY_MODULES:
        return __import__(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class TychoService:
    """A running service endpoint (a status row or a started container)."""

    try_minikube: bool = True
    #: Why the system is not ready (``TychoContext.status`` with ``"reasons": True``
    #: fills it); None otherwise. Not a constructor argument, so rows keep the
    #: original's keys.
    reason: Optional[str] = None

    def __init__(
        self,
        name: Any,
        app_id: Any,
        ip_address: Any,
        port: Any,
        sid: Any=None,
        creation_time: Any=None,
        username: Any="",
        utilization: Optional[Mapping[str, Any]]=None,
        conn_string: str="",
        workspace_name: str="",
        is_ready: bool=False,
    ) -> None:
        self.name = name
        self.app_id = app_id
        self.ip_address = ip_address
        self.port = port
        self.identifier = sid
        self.creation_time = creation_time
        self.username = username
        self.utilization = utilization if utilization is not None else {}
        self.total_util = self.get_utilization(self.utilization)
        self.conn_string = conn_string
        self.workspace_name = workspace_name
        self.is_ready = is_ready

    def get_utilization(self, utilization: Optional[Mapping[str, Any]]) -> dict[str, Any]:
        """Totals over the containers' resource limits.

        ``cpu`` in millicores (int), ``gpu`` as 1000 per GPU of any ``*nvidia*`` resource
        (as tycho-api 1.17.3 counted), ``memory`` in GB as a string (``"1.5"``; binary
        suffixes read as decimal, as before), ``ephemeralStorage`` in GB as a string when
        any container limits it, else ``0``. Containers without limits (None) and limits
        without a cpu or memory entry add nothing — tycho-api 1.17.3 raised on those.
        """
        total: dict[str, Any] = {"gpu": 0, "cpu": 0, "memory": 0, "ephemeralStorage": 0}
        storage = None
        for _container, limits in (utilization or {}).items():
            if not isinstance(limits, dict):
                continue
            if limits.get("cpu") is not None:
                total["cpu"] += _millicores(limits["cpu"])
            for key, value in limits.items():
                if "nvidia" in key and value is not None:
                    total["gpu"] += int(value) * 1000
            if limits.get("memory") is not None:
                total["memory"] += _bytes(limits["memory"])
            for key in ("ephemeral-storage", "ephemeralStorage"):
                if limits.get(key) is not None:
                    storage = (storage or 0) + _bytes(limits[key])
                    break
        total["memory"] = f"{total['memory'] / (10**9)}"
        if storage is not None:
            total["ephemeralStorage"] = f"{storage / (10**9)}"
        return total

    def __repr__(self):
        b = f"id: {self.identifier} time: {self.creation_time} util: {self.utilization}"
        return f"name: {self.name} ip: {self.ip_address} port: {self.port} user:{self.username} {b}"


class TychoStatus:
    """A response to a status request; ``services`` holds one TychoService per row."""

    def __init__(self, status: str, result: Any, message: Any) -> None:
        self.status = status
        rows = result if isinstance(result, list) else []
        self.services = []
        for row in rows:
            # ``reason`` comes only with the opt-in ``"reasons": true`` of our server.
            reason = row.get("reason") if isinstance(row, dict) else None
            if isinstance(row, dict) and "reason" in row:
                row = {k: v for k, v in row.items() if k != "reason"}
            service = TychoService(**row)
            if reason is not None:
                service.reason = reason
            self.services.append(service)
        self.message = message

    def __repr__(self):
        return f"status: {self.status} svcs: {[str(s) for s in self.services]} msg: {self.message}"


class TychoSystem:
    """A started system. Raises StartException (a TychoException) when the start
    response is an error."""

    def __init__(self, status: str, result: Any, message: Any) -> None:
        self.status = status
        if status == "error":
            raise StartException(f"status:{status} result:{result} message:{message}")
        self.name = result["name"]
        self.identifier = result["sid"]
        self.services = []
        for container, endpoint in (result.get("containers") or {}).items():
            port = endpoint.get("port-1")
            if port is None:
                # The port entry is keyed by the Service port's name; take the first one.
                port = next((v for k, v in endpoint.items() if k != "ip_address"), None)
            self.services.append(
                TychoService(name=container, app_id=result["name"], ip_address=endpoint.get("ip_address"), port=port)
            )
        self.conn_string = result.get("conn_string", "")
        self.message = message

    def __repr__(self):
        return f"name: {self.name} sid: {self.identifier} services: {self.services}"


def _refusal(error: Any) -> Optional[dict[str, Any]]:
    """The JSON error answer (``{"status": "error", ...}``) of an HTTP error, or None."""
    try:
        body = json.loads(error.read(1 << 20).decode("utf-8", "replace"))
    except (ValueError, OSError):
        return None
    if isinstance(body, dict) and body.get("status") == "error" and "message" in body:
        return body
    return None


class TychoClient:
    """Python client of the Tycho dynamic application deployment API."""

    #: Seconds to wait for the REST API to answer one request.
    timeout: float = 300

    def __init__(self, url: str="http://localhost:5000") -> None:
        """
        :param url: URL of the Tycho API endpoint (used when REST_API=true).
        """
        self.url = f"{url}/system"
        self.actions = {
            "start": StartSystemResource(),
            "status": StatusSystemResource(),
            "delete": DeleteSystemResource(),
            "modify": ModifySystemResource(),
            "stop": StopSystemResource(),
            "resume": ResumeSystemResource(),
            "touch": TouchSystemResource(),
        }

    def request(self, service: str, request: Any) -> dict[str, Any]:
        """Send ``request`` to ``service`` (start, status, delete, modify, stop, resume,
        touch); returns the response dict."""
        if os.environ.get("REST_API", "false") == "true":
            return self._post(service, request)
        action = self.actions.get(service)
        if action is None:
            raise TychoException(f"unknown Tycho service {service!r}")
        result = action.post(request)
        logger.debug("TychoClient.request - status %s received from service: %s", result.get("status"), service)
        return result

    def _post(self, service, request):
        import urllib.error
        import urllib.request

        url = f"{self.url}/{service}"
        body = to_json(request, what="request").encode("utf-8")
        req = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json", "Accept": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:  # nosec B310 - configured API URL
                code = response.status
                text = response.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            refusal = _refusal(e) if e.code == 400 else None
            if refusal is not None:
                # The request's fault (a policy refusal, a bad body): the server's answer
                # says what, as an error response of the service.
                return refusal
            raise TychoException(f"Error: HTTP status {e.code} received from service: {service}", url) from e
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise TychoException(f"Error: cannot reach the Tycho API at {url}: {reason}", url) from e
        logger.debug("TychoClient.request - HTTP status %s received from service: %s", code, service)
        if code != 200:
            raise TychoException(f"Error: HTTP status {code} received from service: {service}", url)
        try:
            return json.loads(text)
        except ValueError as e:
            raise TychoException(f"Error: the Tycho API at {url} did not answer JSON", text[:200]) from e

    def format_name(self, name: str) -> str:
        """``name`` with path separators replaced by ``-`` (a valid DNS label part)."""
        return name.replace(os.sep, "-")

    def parse_env(self, environment: Optional[str]) -> dict[str, str]:
        """``{VAR: value}`` from ``VAR=value`` lines (lines without ``=`` are skipped)."""
        return _native.parse_env(environment or "")

    def start(self, request: Mapping[str, Any]) -> TychoSystem:
        """Start a system; returns a :class:`TychoSystem` (TychoException on error).

        ``request``: ``{"name", "principal" (JSON text), "serviceaccount", "env", "system", "services"}``.
        """
        response = self.request("start", request)
        return TychoSystem(**response)

    def delete(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Delete a system: ``{"name": <GUID>}``. Returns the response dict."""
        logger.debug("-- delete: %s", brief(request))
        return self.request("delete", request)

    def status(self, request: Mapping[str, Any]) -> TychoStatus:
        """Status of systems: ``{}``, ``{"name": <GUID>}`` or ``{"username": u}``. Returns a TychoStatus."""
        response = self.request("status", request)
        return TychoStatus(**response)

    def modify(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Change a running system:
        ``{"tycho-guid": <GUID>, "labels": {...}, "cpu": ..., "memory": ...}``. Returns the response dict."""
        return self.request("modify", request)

    def stop(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Stop a system: ``{"name": <GUID>}`` (scaled to 0, everything else kept). Returns the response dict."""
        return self.request("stop", request)

    def resume(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Resume a stopped system: ``{"name": <GUID>}``. Returns the response dict."""
        return self.request("resume", request)

    def touch(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Record activity of a system now: ``{"name": <GUID>}``. Returns the response dict."""
        return self.request("touch", request)

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

    def patch(self, mod_items: Mapping[str, Any]) -> Optional[dict[str, Any]]:
        """Modify a running system (CLI helper); returns the response dict, or None on failure."""
        logger.info("System specifications and metadata to be modified: %s", mod_items)
        try:
            response = self.modify(mod_items)
            logger.debug("TychoClient.patch - %s", response)
            return response
        except Exception as e:
            logger.exception("Error in modifying system. %s", e)
            return None


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
