"""Choose the compute back end ("backplane") named in the configuration.

Only ``kubernetes`` is supported (tycho-api 1.17.3 also listed an experimental
``docker-compose`` backplane, which is not carried over).
"""

import logging

logger = logging.getLogger(__name__)

__all__ = ["ComputeFactory", "supported_backplanes", "config"]

config = {"backplane": "kubernetes"}


def _kubernetes(config):
    from tycho.kube import KubernetesCompute

    return KubernetesCompute(config=config)


config_factory = {"kubernetes": _kubernetes}
supported_backplanes = config_factory.keys()


class ComputeFactory:
    @staticmethod
    def is_valid_backplane(backplane):
        return backplane in supported_backplanes

    @staticmethod
    def set_backplane(backplane):
        config["backplane"] = backplane

    @staticmethod
    def create_compute(config):
        """The compute object for ``config['tycho']['backplane']`` (default kubernetes)."""
        tycho_conf = config.get("tycho") or {}
        backplane = tycho_conf.get("backplane") or "kubernetes"
        if backplane not in config_factory:
            from tycho.exceptions import TychoException

            raise TychoException(f"unsupported backplane {backplane!r}; supported: {sorted(supported_backplanes)}")
        return config_factory[backplane](config)
