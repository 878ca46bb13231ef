"""The app registry: which apps a product offers, their specs, and launching them.

:class:`TychoContext` loads ``app-registry.yaml`` and ``app-defaults.yaml`` from the
package's ``conf/`` directory, or over HTTP from ``tycho_config_url``, and compiles the
apps of one context (``product``). The work is done by the native registry
(``src/registry`` in the Rust core); this module keeps the original's classes,
attributes and methods around it:

* contexts inherit apps through ``extends`` (recursively; later contexts and the
  product's own apps replace whole app entries; an unknown context or a cycle raises
  :class:`~tycho.exceptions.ContextException`);
* ``app-defaults.yaml`` is merged into every app, then the apps of each ``mixin``
  context (of the product and of the contexts it extends) are merged over them —
  dicts merge key by key, lists and scalars are replaced;
* an app without ``spec`` gets ``<first repository url>/<app_id>/docker-compose.yaml``
  (a relative repository URL is resolved against ``tycho_config_url``) and every app
  gets ``icon`` beside its spec; ``$repository`` names in spec, icon and docs are
  substituted;
* top-level keys of the product context named like an app are merged into that app;
* a start carries the ``placement`` (Kubernetes pod spec fields) and ``gpu_resource`` of
  the product's context (inherited through ``extends`` and mixins) and of the app, the
  app's merged over the context's (``tycho._native.registry_start_request``, the
  request builder the command line's ``--registry`` uses too).

Specs (docker-compose files) and ``.env`` settings are fetched over HTTP(S) by the
native client (10 s timeout, the GIL released) through an in-memory cache that
revalidates with ETag / Last-Modified after ``TYCHO_REGISTRY_CACHE_SECONDS`` (default
60) seconds; when a revalidation cannot reach the server, the cached copy is used with
a warning. Specs are rendered as templates with the registry's ``settings``. Failures
raise :class:`tycho.exceptions.ContextException` naming the URL and the HTTP status.

``astart``/``astatus``/``adelete``/``aupdate``/``aget_spec``/``aget_definition`` are
awaitable variants for asyncio code; each runs its blocking counterpart on a worker
thread of the native runtime, so several proceed in parallel.

Tokens are never logged.
"""

import copy
import logging
import os
from typing import Any, AsyncIterator, Mapping, Optional

from tycho import _native
from tycho.client import TychoClient, TychoClientFactory, TychoStatus, TychoSystem  # noqa: F401 - re-exported
from tycho.exceptions import ContextException, TychoException
from tycho.tycho_utils import brief, to_json

logger = logging.getLogger(__name__)

__all__ = ["Principal", "TychoContext", "NullContext", "ContextFactory", "RegistryHttpCache", "mixin_merge"]

HTTP_TIMEOUT: float = 10.0

_CONF_DIR = os.path.join(os.path.dirname(__file__), "conf")


def _holds_set(value: Any) -> bool:
    if isinstance(value, set):
        return True
    return isinstance(value, dict) and any(_holds_set(v) for v in value.values())


def _merge(base: Any, addition: Any) -> Any:
    """The registry's deep merge (``tycho._native.deep_merge``, the rule the registry
    compiler applies), ``base`` updated in place. Sets, which JSON and the registry's
    YAML do not have, are united: the one Python-only case, handled here."""
    if isinstance(base, set) and isinstance(addition, set):
        return base | addition
    if not (isinstance(base, dict) and isinstance(addition, dict)):
        return addition
    if _holds_set(base) or _holds_set(addition):
        for key, value in addition.items():
            base[key] = _merge(base[key], value) if key in base else value
        return base
    merged = _native.deep_merge(base, addition)
    base.clear()
    base.update(merged)
    return base


class _MixinMerger:
    """Deep merge used for app-defaults and mixins: ``mixin_merge(base, addition)`` (or
    ``mixin_merge.merge(base, addition)``) merges ``addition`` into ``base`` in place and
    returns the result. Dicts merge key by key (recursively), sets are united, and
    everything else — lists, scalars, values of different types — is replaced by
    ``addition``'s value. (The registry compiler applies the same rule natively.)"""

    def merge(self, base: Any, addition: Any) -> Any:
        return _merge(base, addition)

    __call__ = merge


mixin_merge: _MixinMerger = _MixinMerger()


class Principal:
    """A system identity: a username and, optionally, OAuth tokens."""

    def __init__(self, username: str, a_token: Optional[str]=None, r_token: Optional[str]=None) -> None:
        self.username = username
        self.access_token = a_token
        self.refresh_token = r_token

    def __repr__(self):
        # Never show tokens.
        return f"Principal(username={self.username!r})"


# ---------------------------------------------------------------- HTTP with revalidation


class _Response:
    """What :meth:`RegistryHttpCache.get` returns (the subset of requests.Response used)."""

    def __init__(self, url: str, status_code: int, text: str, headers: Optional[dict[str, str]]=None, from_cache: bool=False, revalidated: bool=False) -> None:
        self.url = url
        self.status_code = status_code
        self.text = text
        self.headers = headers or {}
        self.from_cache = from_cache
        self.revalidated = revalidated

    @property
    def ok(self) -> bool:
        return self.status_code == 200

    def __repr__(self):
        return f"<Response {self.status_code} {self.url}{' (cached)' if self.from_cache else ''}>"


def _default_max_age():
    """TYCHO_REGISTRY_CACHE_SECONDS (default 60), read by the core."""
    return _native.environment_python()["registry_cache_seconds"]


class RegistryHttpCache:
    """GETs text over HTTP(S) and keeps successful answers in memory (native client).

    A cached answer younger than ``max_age`` seconds is returned as is; an older one
    is revalidated with If-None-Match / If-Modified-Since, and a 304 answer keeps the
    cached body. If revalidation cannot reach the server (or it answers 5xx), the
    cached body is used with a warning. Non-200 answers are returned, not cached.
    Each fetch is bounded by ``timeout`` seconds and runs without the GIL.
    """

    def __init__(self, timeout: float=HTTP_TIMEOUT, max_age: Optional[float]=None) -> None:
        self._cache = _native.RegistryCache(float(timeout), float(_default_max_age() if max_age is None else max_age))

    @property
    def timeout(self):
        return self._cache.timeout

    @timeout.setter
    def timeout(self, value):
        self._cache.timeout = float(value)

    @property
    def max_age(self):
        return self._cache.max_age

    @max_age.setter
    def max_age(self, value):
        self._cache.max_age = float(value)

    @property
    def stats(self) -> dict[str, int]:
        """Counters: ``requests`` sent, ``not_modified`` answers, cache ``hits``."""
        return self._cache.stats()

    def clear(self) -> None:
        self._cache.clear()

    @staticmethod
    def _response(url, answer):
        status, text, headers, from_cache, revalidated, stale = answer
        if stale:
            logger.warning("cannot revalidate %s (%s); using the cached copy", url, stale)
        return _Response(url, status, text, dict(headers), from_cache=from_cache, revalidated=revalidated)

    def get(self, url: str) -> _Response:
        """The answer for ``url`` (any status). Raises ContextException when the server
        cannot be reached and nothing is cached."""
        return self._response(url, self._cache.get(url))

    def fetch(self, url: str, what: str="file") -> str:
        """The text at ``url``; any status but 200 raises ContextException naming
        ``what``, the URL and the status."""
        return self._response(url, self._cache.fetch(url, what)).text


class _UnknownApp(ContextException, KeyError):
    """An app (or its compose service) that is not there: a ContextException that is
    also the KeyError the original raised."""

    def __str__(self):
        return self.message


def _safe_principal(principal_params):
    return {k: v for k, v in principal_params.items() if k not in ("access_token", "refresh_token")}


class TychoContext(_native.TychoContext):
    """Load, compile and use the app registry (see the module documentation).

    The operations (:meth:`start`, :meth:`_start`, :meth:`status`, :meth:`delete`,
    :meth:`update`, :meth:`stop`, :meth:`resume`, :meth:`touch`) are native
    (``tycho._native.TychoContext``, src/bindings/context.rs) and reach each other, the
    file methods below and :attr:`client` through attribute lookup, so a subclass or a
    ``mock.patch.object(TychoContext, "_start", ...)`` is honoured. ``start`` builds the
    request with the core's one builder without returning to Python, then calls
    ``self._start(request)``: the named patch point before its check, compile and start.
    """

    def __init__(
        self,
        registry_config: str="app-registry.yaml",
        app_defaults_config: str="app-defaults.yaml",
        product: str="common",
        tycho_config_url: str="",
        stub: bool=False,
    ) -> None:
        # Without a trailing "/" urljoin would drop the URL's last segment.
        if tycho_config_url and not tycho_config_url.endswith("/"):
            tycho_config_url += "/"
        self.tycho_config_url = tycho_config_url or ""
        self.stub = stub
        logger.info(
            "-- TychoContext.__init__: registry_config: %s | app_defaults_config: %s | product: %s | "
            "tycho_config_url: %s | stub: %s",
            registry_config,
            app_defaults_config,
            product,
            self.tycho_config_url,
            stub,
        )
        self.http_session = RegistryHttpCache()
        self.registry = self._get_config(registry_config) or {}
        self.app_defaults = self._get_config(app_defaults_config) or {}
        self.log_dict(self.app_defaults, pre_dict_message="defaults = \n")
        self.log_dict(self.registry, pre_dict_message="registry = \n")
        self.client = TychoClient(url=_native.environment_python()["tycho_url"])
        self.product = product
        self.apps = self._grok()

    # ------------------------------------------------------------------ loading

    def _fetch(self, url, what):
        """The text at ``url`` through :attr:`http_session` (ContextException unless 200)."""
        return self.http_session.fetch(url, what)

    def _get_config(self, file_name: str) -> Any:
        """The registry (or defaults) file: from conf/ in the package, or from tycho_config_url."""
        logger.debug("-- loading config: file_name: %s tycho_config_url: %s", file_name, self.tycho_config_url)
        document, stale = _native.registry_load_config(
            self.http_session._cache, self.tycho_config_url, file_name, _CONF_DIR
        )
        if stale:
            logger.warning("cannot revalidate registry file %s (%s); using the cached copy", file_name, stale)
        return document

    def log_dict(self, dict: Any, pre_dict_message: str="", level: int=logging.DEBUG) -> None:
        if logger.isEnabledFor(level):
            try:
                text = to_json(dict, what="registry data", sort_keys=True, indent=4, default=str)
            except TychoException:
                text = str(brief(dict))
            logger.log(level, pre_dict_message + text)

    # ------------------------------------------------------------------ compiling
    # _grok compiles natively in one pass; the steps stay available one by one.

    def add_conf_impl(self, apps: dict[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
        """Merge top-level entries of ``context`` named like an app into that app."""
        apps.update(_native.registry_add_conf_impl(apps, context))
        return apps

    def inherit(self, contexts: Mapping[str, Any], context: Mapping[str, Any], apps: Optional[dict[str, Any]]=None) -> dict[str, Any]:
        """Apps of ``context`` and, first, of every context it extends (recursively);
        added to ``apps`` when given."""
        inherited = _native.registry_inherit(contexts, context, self.product)
        if apps is None:
            return inherited
        apps.update(inherited)
        return apps

    def mixin_defaults(self, apps: dict[str, Any]) -> None:
        """Merge app-defaults into every app."""
        apps.update(_native.registry_mixin_defaults(apps, self.app_defaults))

    def mixin(self, contexts: Mapping[str, Any], context: Mapping[str, Any], apps: dict[str, Any]) -> dict[str, Any]:
        """Merge the apps of the ``mixin`` contexts (of ``context`` and those it extends) into ``apps``."""
        apps.update(_native.registry_mixin(contexts, context, apps))
        return apps

    def _grok(self) -> dict[str, dict[str, Any]]:
        """Compile the registry for :attr:`product` (see the module documentation)."""
        logger.info("-- load-context: id:%s", self.product)
        apps = _native.registry_grok(self.registry, self.app_defaults, self.product, self.tycho_config_url)
        if logger.isEnabledFor(logging.DEBUG):
            for name, app in apps.items():
                logger.debug("-- %s spec: %s icon: %s", name, app.get("spec"), app.get("icon"))
            logger.debug("-- product %s resolution => apps: %s", self.product, list(apps))
        return apps

    # ------------------------------------------------------------------ specs

    def _app(self, app_id):
        try:
            return self.apps[app_id]
        except KeyError:
            raise _UnknownApp(f"app {app_id!r} is not in the {self.product} registry") from None

    def _render_spec(self, app_id, url):
        """Fetch the compose file at ``url`` and render it with the registry settings."""
        text = self._fetch(url, f"spec of app {app_id}")
        settings = self.registry.get("settings", {}) or {}
        return _native.registry_render_spec(app_id, str(url), text, settings)

    def get_definition(self, app_id: str) -> dict[str, Any]:
        """The app's compose structure, rendered with the registry settings (a copy)."""
        app = self._app(app_id)
        logger.debug("-- resolving definition for %s", app_id)
        definition = self._render_spec(app_id, app["spec"])
        app["definition"] = definition
        self.log_dict(definition, pre_dict_message="app_definition = \n")
        return copy.deepcopy(definition)

    def get_spec(self, app_id: str) -> dict[str, Any]:
        """The app's compose structure, rendered with the registry settings (a fresh copy
        the caller may change)."""
        app = self._app(app_id)
        logger.debug("-- resolving specification for app: %s", app_id)
        spec = self._render_spec(app_id, app["spec"])
        app["spec_obj"] = spec
        return copy.deepcopy(spec)

    def get_env_registry(self, app_id: str, settings: dict[str, Any]) -> dict[str, Any]:
        """``settings`` updated with the app's registry ``env``."""
        env = self._app(app_id).get("env", None)
        if env:
            settings.update(env)
        return settings

    def get_settings(self, app_id: str) -> str:
        """Text of the ``.env`` file beside the app's spec ("" when there is none)."""
        app = self._app(app_id)
        env_url = _native.registry_settings_url(str(app["spec"]))
        logger.debug("-- resolving settings for app: %s", app_id)
        response = self.http_session.get(env_url)
        if response.status_code == 200:
            env = response.text
        else:
            if response.status_code != 404:
                logger.warning("-- settings %s: HTTP status %s; using empty settings", env_url, response.status_code)
            env = ""
        app["env_obj"] = env
        return env

    # ------------------------------------------------------------------ operations

    def readiness(self, sid: Any) -> dict[str, Any]:
        """One progress event of system ``sid`` (its GUID), read from the cluster:
        ``{"sid", "progress" (0-100), "phase", "message", "ready", "failed", "reason"}``.
        ``reason`` says why it is not ready (``ImagePullBackOff: ...``,
        ``Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.``,
        ``CrashLoopBackOff``); ``failed`` means it cannot get ready without a change."""
        return _native.kube_readiness(str(sid))

    def wait(self, sid: Any, timeout: float = 300.0) -> dict[str, Any]:
        """Block until system ``sid`` is ready, has failed, or ``timeout`` seconds pass;
        returns the last progress event (``ready`` / ``failed``; neither on timeout)."""
        return _native.kube_wait(str(sid), float(timeout))

    async def aprogress(
        self, sid: Any, interval: float = 1.0, timeout: Optional[float] = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Progress events of system ``sid`` (KubeSpawner's shape: ``progress``,
        ``message``, ``ready``, plus ``phase``, ``failed`` and ``reason``), each one that
        differs from the one before, as the watch cache delivers the changes of the
        system's Deployment, pods and their events (no polling: ``interval`` is kept for
        the signature's sake and not used); ends after the event that is ``ready`` or
        ``failed``, or when ``timeout`` seconds (None: no limit, at most a day) have
        passed."""
        del interval
        follower = _native.kube_follow(str(sid), None if timeout is None else float(timeout))
        try:
            async for event in follower:
                yield event
        finally:
            follower.close()

    def cull(self, **options: Any) -> dict[str, Any]:
        """One culling pass on this process's compute backplane (not through the REST
        API): stop (``action="stop"``, the default) or delete the systems idle longer
        than ``idle`` or older than ``max_age``. Options as
        :func:`tycho.compute.cull_options` (``username``, ``app``, ``dry_run``, ``now``,
        ``activity_host``, ``concurrency``). Returns ``{"now", "action", "dry_run",
        "culled": [{sid, reason, last_activity, activity_source, ...}], "kept"}``."""
        from tycho.actions import tycho

        return tycho().get_compute().cull(**options)

    def _fetches_natively(self) -> bool:
        """Whether :meth:`start` may let the core fetch the spec and settings: neither
        :meth:`get_spec` nor :meth:`get_settings` (nor what they call) is replaced."""
        return (
            all(getattr(getattr(self, name), "__func__", None) is method for name, method in _FILE_METHODS.items())
            and type(self.http_session) is RegistryHttpCache
        )

    # ------------------------------------------------------------------ asyncio

    async def astart(self, principal, app_id, *args, **kwargs):
        """``await``-able :meth:`start` (same arguments), run on a native worker thread."""
        return await _native.aio_call(self.start, principal, app_id, *args, **kwargs)

    async def astatus(self, request: Optional[Mapping[str, Any]]=None) -> TychoStatus:
        """``await``-able :meth:`status`."""
        return await _native.aio_call(self.status, request)

    async def adelete(self, request: Mapping[str, Any]) -> Any:
        """``await``-able :meth:`delete`."""
        return await _native.aio_call(self.delete, request)

    async def aupdate(self, request: Mapping[str, Any]) -> Any:
        """``await``-able :meth:`update`."""
        return await _native.aio_call(self.update, request)

    async def astop(self, name: Any) -> dict[str, Any]:
        """``await``-able :meth:`stop`."""
        return await _native.aio_call(self.stop, name)

    async def aresume(self, name: Any) -> dict[str, Any]:
        """``await``-able :meth:`resume`."""
        return await _native.aio_call(self.resume, name)

    async def atouch(self, name: Any) -> dict[str, Any]:
        """``await``-able :meth:`touch`."""
        return await _native.aio_call(self.touch, name)

    async def acull(self, **options: Any) -> dict[str, Any]:
        """``await``-able :meth:`cull`."""
        return await _native.aio_call(self.cull, **options)

    async def aget_spec(self, app_id: str) -> dict[str, Any]:
        """``await``-able :meth:`get_spec`."""
        return await _native.aio_call(self.get_spec, app_id)

    async def aget_definition(self, app_id: str) -> dict[str, Any]:
        """``await``-able :meth:`get_definition`."""
        return await _native.aio_call(self.get_definition, app_id)


#: The methods through which the original's start fetched the spec and settings, as
#: defined here: when a subclass or a mock.patch replaces one, start calls them.
_FILE_METHODS: dict[str, Any] = {
    name: TychoContext.__dict__[name] for name in ("get_spec", "get_settings", "_render_spec", "_fetch", "_app")
}


class NullContext(TychoContext):
    """A context that fakes status, start, delete and update, for client development
    (appstore's DEV_PHASE=stub). It reads the packaged registry and never touches the
    network or a cluster."""

    def __init__(self, product: str="common") -> None:
        super().__init__(product=product, stub=True)

    def status(self, request: Optional[Mapping[str, Any]]=None) -> TychoStatus:
        """Five made-up rows of one jupyter-ds system."""
        import uuid

        identifier = uuid.uuid4()
        return TychoStatus(
            status="success",
            result=[
                {
                    "name": f"jupyter-ds-{identifier}",
                    "app_id": "jupyter-ds",
                    "sid": str(identifier),
                    "ip_address": "x.y.z.m",
                    "port": "8080",
                    "creation_time": "time",
                }
                for _ in range(8000, 8005)
            ],
            message="...",
        )

    def delete(self, request: Mapping[str, Any]) -> None:
        """Ignore deletes."""
        logger.debug("-- delete: %s", request)

    def stop(self, name: Any) -> dict[str, Any]:
        """Ignore stops."""
        logger.debug("-- stop: %s", name)
        return {"name": str(name), "deployments": {}}

    def resume(self, name: Any) -> dict[str, Any]:
        """Ignore resumes."""
        logger.debug("-- resume: %s", name)
        return {"name": str(name), "deployments": {}}

    def touch(self, name: Any) -> dict[str, Any]:
        """Ignore touches."""
        return {"name": str(name), "deployments": {}}

    def cull(self, **options: Any) -> dict[str, Any]:
        """Cull nothing."""
        return {"now": None, "action": options.get("action", "stop"), "dry_run": bool(options.get("dry_run")),
                "culled": [], "kept": 0}

    def update(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Ignore modifications; answers like a successful modify."""
        logger.debug("-- update: %s", request)
        return {"status": "success", "result": {"patches": []}, "message": "null context: nothing modified"}

    def start(self, principal: Principal, app_id: str, resource_request: Optional[Mapping[str, Any]]=None, host: Optional[str]=None, extra_container_env: Optional[Mapping[str, Any]]=None) -> TychoSystem:
        """A made-up :class:`TychoSystem` for ``app_id`` (its registry services, address x.y.z)."""
        import uuid

        logger.debug("-- start: %s %s", principal, app_id)
        app = self._app(app_id)
        services = app.get("services") or {}
        return TychoSystem(
            status="ok",
            result={
                "name": app.get("name", app_id),
                "sid": uuid.uuid4().hex,
                "containers": {k: {"ip_address": "x.y.z", "port-1": v} for k, v in services.items()},
                "conn_string": app.get("conn_string", ""),
            },
            message="mock: testing...",
        )


class ContextFactory:
    """Shared (Borg) factory of contexts: one context per context type ("null" or "live")."""

    _state: dict[str, Any] = {}

    def __init__(self) -> None:
        self.__dict__ = self._state
        if not hasattr(self, "contexts"):
            self.contexts: dict[str, Any] = {}

    def get(
        self,
        product: str,
        registry_config: str="app-registry.yaml",
        app_defaults_config: str="app-defaults.yaml",
        context_type: str="null",
        tycho_config_url: str="",
    ) -> TychoContext:
        """The context of ``context_type``, created with these arguments on first request.
        The null context always uses the packaged registry."""
        logger.info(
            "-- ContextFactory.get: registry_config: %s | app_defaults_config: %s | product: %s | "
            "tycho_config_url: %s | context_type: %s",
            registry_config,
            app_defaults_config,
            product,
            tycho_config_url,
            context_type,
        )
        if context_type in self.contexts:
            return self.contexts[context_type]
        context: Any
        if context_type == "null":
            context = NullContext(product=product)
        elif context_type == "live":
            context = TychoContext(
                registry_config=registry_config,
                app_defaults_config=app_defaults_config,
                product=product,
                tycho_config_url=tycho_config_url,
                stub=False,
            )
        else:
            raise ContextException(f"unknown context type {context_type!r}; use 'null' or 'live'")
        self.contexts[context_type] = context
        return context
