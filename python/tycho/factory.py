"""Choose the compute back end ("backplane") named in the configuration.

``kubernetes`` (:class:`tycho.kube.KubernetesCompute`) and, as in tycho-api 1.17.3,
``docker-compose`` (:class:`tycho.dockerc.DockerComposeCompute`: this machine's Docker
Engine), also reachable as ``docker``.
"""

import logging
from typing import Any, Callable, KeysView, Optional

from tycho.compute import Compute

logger = logging.getLogger(__name__)

__all__ = ["ComputeFactory", "supported_backplanes", "config"]

config: dict[str, str] = {"backplane": "kubernetes"}


def _kubernetes(config):
    from tycho.kube import KubernetesCompute

    return KubernetesCompute(config=config)


def _docker(config):
    from tycho.dockerc import DockerComposeCompute

    return DockerComposeCompute(config=config)


# The original's two names; ``docker`` is accepted as another name of ``docker-compose``.
config_factory: dict[str, Callable[[Any], Compute]] = {"kubernetes": _kubernetes, "docker-compose": _docker}
supported_backplanes: KeysView[str] = config_factory.keys()
_ALIASES = {"docker": "docker-compose"}


class ComputeFactory:
    @staticmethod
    def is_valid_backplane(backplane: object) -> bool:
        return backplane in supported_backplanes or backplane in _ALIASES

    @staticmethod
    def set_backplane(backplane: str) -> None:
        config["backplane"] = backplane

    @staticmethod
    def create_compute(config: Any, backplane: Optional[str]=None) -> Compute:
        """The compute object for ``backplane`` when given, else for
        ``config['tycho']['backplane']`` (default kubernetes)."""
        if not backplane:
            tycho_conf = config.get("tycho") or {}
            backplane = tycho_conf.get("backplane") or "kubernetes"
        backplane = _ALIASES.get(backplane, backplane)
        if backplane not in config_factory:
            from tycho.exceptions import TychoException

            raise TychoException(f"unsupported backplane {backplane!r}; supported: {sorted(supported_backplanes)}")
        return config_factory[backplane](config)
