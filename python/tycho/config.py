"""Tycho configuration: a dict-like view of conf/tycho.yaml."""

import ipaddress
import logging
from typing import Any, Union

from tycho import _native
from tycho.tycho_utils import Resource

logger = logging.getLogger(__name__)

__all__ = ["Config"]


def _load_yaml_file(path):
    with open(path, "r") as stream:
        docs = _native.yaml_load_all(stream.read())
    return docs[0] if docs else {}


class Config(dict):
    """Configuration of the system.

    ``Config()`` reads ``conf/tycho.yaml`` shipped in the package; ``Config(path)`` reads
    a YAML file (relative paths are resolved against the package directory);
    ``Config(mapping)`` wraps a dict (not copied). The mapping is ``.conf``; item access,
    ``get`` and ``str()`` go to it, and the dict itself mirrors its top-level keys.

    With ``TYCHO_ON_MINIKUBE`` set, ``minikube ip`` is run once and its address stored
    at ``['tycho']['compute']['platform']['kube']['ip']``.
    """

    def __init__(self, config: Union[str, dict[str, Any]]="conf/tycho.yaml") -> None:
        super().__init__()
        if isinstance(config, str):
            config_path = Resource.get_resource_path(config)
            logger.debug("loading config: %s", config_path)
            conf = _load_yaml_file(config_path)
        elif isinstance(config, Config):
            conf = config.conf
        elif isinstance(config, dict):
            conf = config
        else:
            raise ValueError(f"config must be a path or a dict, not {type(config).__name__}")
        if conf is None:
            conf = {}
        self.conf = conf
        if _native.environment_python()["on_minikube"]:
            self._use_minikube_ip()

    def _use_minikube_ip(self):
        import subprocess  # nosec B404 - fixed argv, no shell

        try:
            ip = subprocess.run(["minikube", "ip"], capture_output=True, text=True, timeout=30).stdout.strip()  # nosec
            ipaddress.ip_address(ip)
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            logger.error("unable to get minikube ip address: %s", e)
            return
        logger.info("configuring minikube ip: %s", ip)
        kube = self.conf.setdefault("tycho", {}).setdefault("compute", {}).setdefault("platform", {})
        kube.setdefault("kube", {})["ip"] = ip

    @property
    def conf(self) -> dict[str, Any]:
        return self._conf

    @conf.setter
    def conf(self, value: dict[str, Any]) -> None:
        self._conf = value
        dict.clear(self)
        if isinstance(value, dict):
            dict.update(self, value)

    def __setitem__(self, key: str, val: Any) -> None:
        self._conf[key] = val
        dict.__setitem__(self, key, val)

    def __delitem__(self, key: str) -> None:
        del self._conf[key]
        dict.__delitem__(self, key)

    def __getitem__(self, key: str) -> Any:
        return self._conf[key]

    def __contains__(self, key: object) -> bool:
        return key in self._conf

    def __str__(self):
        return str(self._conf)

    def __repr__(self):
        return f"Config({self._conf!r})"

    def get(self, key: str, default: Any=None) -> Any:
        return self._conf.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        """The configuration mapping."""
        return self._conf
