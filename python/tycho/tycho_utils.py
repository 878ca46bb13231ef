"""Text and resource helpers: templates, environment substitution, package files.

Rendering is done by the native core (``tycho._native``): Jinja2-compatible templates
whose values print like Python's ``str()``, and YAML read the way PyYAML's
``safe_load_all`` reads it (YAML 1.1). Contexts may hold arbitrary objects (a
:class:`tycho.model.System`, a kubernetes client model, an ``argparse.Namespace``):
they are converted to plain dicts and lists first with :func:`to_plain`.
"""

import json
import logging
import os
import string
from typing import Any, Mapping, Optional

from tycho import _native
from tycho.exceptions import TychoException

logger = logging.getLogger(__name__)

__all__ = ["TemplateUtils", "NetworkUtils", "Resource", "to_plain"]

_SCALARS = (str, int, float, bool, type(None))


#: How deep a value may nest (mappings and sequences), as in the native core
#: (``crate::limits::MAX_DEPTH``): a deeper value is refused with the field named.
MAX_DEPTH = 128


def to_plain(value: Any, _seen: Optional[set[int]]=None, *, what: str="value") -> Any:
    """Convert ``value`` into plain dicts, lists and scalars for the native core.

    Objects are converted, in order of preference, with their ``to_dict()`` method,
    their ``__json__()`` method, or their public instance attributes. Anything else
    (and any reference cycle) becomes its ``str()``. Mapping keys that are not str,
    int, float, bool or None become their ``str()``. A value nested deeper than
    :data:`MAX_DEPTH` levels raises :class:`tycho.exceptions.TychoException` naming
    the field (``exc.field``, a path from ``value``; ``what`` names the whole).
    The walk is the core's (``tycho._native.to_plain``); ``_seen`` is unused.
    """
    if isinstance(value, _SCALARS):
        return value
    return _native.to_plain(value, what)


def _too_deep(what: str, path: list[Any]) -> TychoException:
    """The native core's error for a value nested deeper than MAX_DEPTH."""
    where = ".".join(str(p) for p in path[:MAX_DEPTH + 1])
    where = where if len(where) <= 200 else where[:200] + "..."
    named = f"{what} field '{where}'" if path else what
    error = TychoException(f"{named}: nested deeper than {MAX_DEPTH} levels of mappings and sequences")
    error.field = where or None
    return error


def to_json(value: Any, what: str="value", **dumps: Any) -> str:
    """``json.dumps`` of ``value`` after :func:`to_plain` (bounded in depth, any key type):
    a TychoException naming the field, never RecursionError or TypeError."""
    try:
        return json.dumps(to_plain(value, what=what), **dumps)
    except (TypeError, ValueError) as e:  # e.g. sort_keys over keys of mixed types
        raise TychoException(f"{what}: cannot be written as JSON: {str(e)[:200]}") from None


class _Brief:
    """A value as log text, computed only when a record is emitted: nested levels and
    long strings cut (``reprlib``), so a deep or huge request cannot break logging."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __str__(self) -> str:
        import reprlib

        brief = reprlib.Repr()
        brief.maxlevel, brief.maxstring, brief.maxother = 8, 200, 200
        brief.maxdict = brief.maxlist = brief.maxtuple = brief.maxset = 50
        return brief.repr(self.value)


def brief(value: Any) -> Any:
    """``value`` for a log message argument (``%s``): depth and length bounded."""
    return _Brief(value)


class _PlainContext(dict):
    """A template context already in plain form (``System.render`` builds one):
    ``TemplateUtils.render`` passes it on without converting it again."""


class _TemplateNotFound(TychoException, ValueError):
    """No template of that name: a TychoException that is also the original's ValueError."""

    def __str__(self):
        return self.message


class Documents(list):
    """The YAML documents of a rendered template: a list that is also an iterator.

    The original returned PyYAML's ``load_all`` generator, so callers wrote
    ``next(system.render("pod.yaml"))`` as well as ``list(...)`` and ``for``; a
    ``Documents`` supports those and list use (``len``, indexing, ``==``).
    ``next()`` hands out the documents in order, independently of ``for`` loops.
    """

    __slots__ = ("_next",)

    def __init__(self, items: Any=()) -> None:
        super().__init__(items)
        self._next = 0

    def __next__(self) -> Any:
        if self._next >= len(self):
            raise StopIteration
        self._next += 1
        return self[self._next - 1]


def _config_mapping(config):
    """The plain mapping behind a Config, a dict, or None."""
    if config is None:
        return None
    inner = getattr(config, "conf", config)
    return inner


class TemplateUtils:
    """Utilities for generating text."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def render(self, template: str, context: Mapping[str, Any]) -> Documents:
        """Render the template named ``template`` (e.g. ``"pod.yaml"``) with ``context``.

        Directories listed in ``config['tycho']['templates']['paths']`` are searched first
        for a file of that name, then the built-in templates. Returns the list of YAML
        documents (dicts) the rendered text holds.
        """
        logger.debug("applying template %s", template)
        try:
            plain = context if type(context) is _PlainContext else to_plain(context)
            documents = _native.render_template(template, plain, config=_config_mapping(self.config))
        except TychoException as e:
            if str(e).startswith("no template "):
                raise _TemplateNotFound(str(e)) from None
            raise
        return Documents(documents)

    @staticmethod
    def render_text(template_text: str, context: Mapping[str, Any]) -> Documents:
        """Render template text with ``context`` and return the YAML documents it yields."""
        text = TemplateUtils.render_string(template_text, context)
        logger.debug("TemplateUtils.render_text - %s", text)
        return Documents(_native.yaml_load_all(text))

    @staticmethod
    def render_string(s: str, context: Mapping[str, Any]) -> str:
        """Render template text ``s`` with ``context``; ``now()`` is available."""
        return _native.render_string(s, to_plain(context))

    @staticmethod
    def apply_environment(environment: Optional[str], text: str) -> str:
        """Substitute ``$VAR``/``${VAR}`` in ``text`` from Bash-style ``VAR=value`` lines.

        Unknown variables are left as they are.
        """
        if not environment:
            return text
        mapping = _native.parse_env(environment)
        logger.debug("environment=%s", json.dumps(mapping, indent=2))
        return string.Template(text).safe_substitute(**mapping)

    @staticmethod
    def trunc(a_string: str, max_len: int=80) -> str:
        """``a_string`` cut to ``max_len`` characters with ``..`` appended when cut."""
        return (a_string[:max_len] + "..") if len(a_string) > max_len else a_string


def _first_forwarded(headers):
    """The first address of the X-Forwarded-For header(s), or None."""
    if headers is None:
        return None
    values = None
    getlist = getattr(headers, "getlist", None)
    if callable(getlist):
        values = getlist("X-Forwarded-For")
    else:
        get = getattr(headers, "get", None)
        if callable(get):
            one = get("X-Forwarded-For")
            values = [one] if one else []
    for value in values or []:
        first = str(value).split(",")[0].strip()
        if first:
            return first
    return None


def _local_address():
    """An address of this host that is not loopback, or None (no packets are sent)."""
    try:
        import netifaces  # type: ignore[import-not-found,import-untyped,unused-ignore]

        for name in netifaces.interfaces():
            for entry in netifaces.ifaddresses(name).get(netifaces.AF_INET, []):
                addr = entry.get("addr")
                if addr and not addr.startswith("127."):
                    return addr
    except Exception:  # netifaces missing or failing: try the resolver instead
        pass
    try:
        import socket

        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            addr = str(info[4][0])
            if not addr.startswith("127."):
                return addr
    except OSError:
        pass
    return None


class NetworkUtils:
    @staticmethod
    def get_client_ip(request: Any, debug: bool=False) -> Optional[str]:
        """The client's IP address: the first X-Forwarded-For entry when a proxy sent
        one, else ``request.remote_addr``. With ``debug``, a non-loopback address of this
        host is preferred (netifaces when installed, else the resolver; unchanged if none).
        """
        ip_addr = getattr(request, "remote_addr", None)
        forwarded = _first_forwarded(getattr(request, "headers", None))
        if forwarded:
            ip_addr = forwarded
        if debug:
            local = _local_address()
            if local:
                ip_addr = local
            logger.debug("(debug mode ip addr:)--> %s", ip_addr)
        return ip_addr


class Resource:
    @staticmethod
    def get_resource_path(resource_name: str) -> str:
        """``resource_name`` resolved against the package directory unless absolute."""
        if os.path.isabs(resource_name):
            return resource_name
        return os.path.join(os.path.dirname(__file__), resource_name)

    @staticmethod
    def load_json(path: str) -> Any:
        with open(path, "r") as stream:
            return json.loads(stream.read())

    @staticmethod
    def load_yaml(path: str) -> Any:
        """The single YAML document in the file at ``path`` (None when empty)."""
        with open(path, "r") as stream:
            docs = _native.yaml_load_all(stream.read())
        if len(docs) > 1:
            raise TychoException(f"expected a single YAML document in {path}, found {len(docs)}")
        return docs[0] if docs else None

    def get_resource_obj(self, resource_name: str, format: Optional[str]=None) -> Any:
        """Load a package resource as YAML or JSON (by extension unless ``format``);
        None when the file does not exist or the format is unknown."""
        if not format:
            format = "yaml" if resource_name.endswith((".yaml", ".yml")) else "json"
        path = Resource.get_resource_path(resource_name)
        if not os.path.exists(path):
            return None
        loaders = {"json": Resource.load_json, "yaml": Resource.load_yaml}
        loader = loaders.get(format)
        return loader(path) if loader else None
