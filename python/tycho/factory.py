"""Choose the compute back end ("backplane") named in the configuration.

``kubernetes`` (:class:`tycho.kube.KubernetesCompute`) and, as in tycho-api 1.17.3,
``docker-compose`` (:class:`tycho.dockerc.DockerComposeCompute`: this machine's Docker
Engine), also reachable as ``docker``.
"""

import logging
from typing import Any, Callable, KeysView, Optional

from tycho import _native
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


# The original's two names, from the core (``tycho._native.BACKPLANES``, in that order);
# the core also accepts ``docker`` as another name of ``docker-compose``.
config_factory: dict[str, Callable[[Any], Compute]] = dict(zip(_native.BACKPLANES, (_kubernetes, _docker)))
supported_backplanes: KeysView[str] = config_factory.keys()


def _canonical(backplane: object) -> Optional[str]:
    """The original's name of ``backplane`` (the core's rule), None when it names none."""
    return _native.backplane_name(backplane) if isinstance(backplane, str) else None


class ComputeFactory:
    @staticmethod
    def is_valid_backplane(backplane: object) -> bool:
        return _canonical(backplane) is not None

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
        name = _canonical(backplane)
        if name is None:
            from tycho.exceptions import TychoException

            raise TychoException(f"unsupported backplane {backplane!r}; supported: {sorted(supported_backplanes)}")
        return config_factory[name](config)
