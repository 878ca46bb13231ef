"""The Tycho facade: parse requests into models and reach the compute back end."""

import logging
import typing
from collections.abc import Mapping

from tycho.compute import Compute
from tycho.config import Config
from tycho.exceptions import RequestKeyError, RequestTypeError
from tycho.factory import ComputeFactory, supported_backplanes
from tycho.model import ModifySystem, System

logger = logging.getLogger(__name__)

__all__ = ["Tycho"]


class Tycho:
    """Organizes parsing of system requests and their execution on a compute fabric."""

    def __init__(self, backplane: typing.Optional[str]="kubernetes", config: typing.Union[str, dict[str, typing.Any], Config]="conf/tycho.yaml") -> None:
        """
        :param backplane: Name of the compute back end: ``kubernetes`` or
                          ``docker-compose`` (alias ``docker``). Any other value than
                          the default ``kubernetes`` wins over the configuration's
                          ``tycho.backplane``; ``kubernetes`` or None leave the choice
                          to the configuration (the original always read the
                          configuration).
        :param config: Path of a configuration file (relative to the package or
                       absolute), a dict, or a :class:`tycho.config.Config`.
        """
        self.backplane = backplane
        self.config = config if isinstance(config, Config) else Config(config)
        self._compute: typing.Optional[Compute] = None

    @property
    def compute(self) -> Compute:
        """The compute back end, created on first use."""
        return self.get_compute()

    @compute.setter
    def compute(self, value: typing.Optional[Compute]) -> None:
        self._compute = value

    def get_compute(self) -> Compute:
        """The compute back end named by the configuration (created on the first call)."""
        if self._compute is None:
            chosen = self.backplane if self.backplane and self.backplane != "kubernetes" else None
            self._compute = ComputeFactory.create_compute(self.config, backplane=chosen)
        return self._compute

    def parse(self, request: typing.Mapping[str, typing.Any]) -> System:
        """A :class:`tycho.model.System` from a start request
        (``name``, ``principal``, ``system``, optional ``serviceaccount``, ``env``, ``services``)."""
        if not isinstance(request, Mapping):
            raise RequestTypeError(f"start request must be a mapping, got {type(request).__name__}")
        for field in ("name", "system"):
            if field not in request:
                raise RequestKeyError(f"start request field {field!r} is required")
        return System.parse(
            config=self.config,
            name=request["name"],
            principal=request.get("principal"),
            system=request["system"],
            service_account=request.get("serviceaccount", "default"),
            env=request.get("env", {}),
            services=request.get("services", {}),
            count=request.get("count"),
        )

    def parse_modify(self, request: typing.Mapping[str, typing.Any]) -> ModifySystem:
        """A :class:`tycho.model.ModifySystem` from a modify request
        (``tycho-guid``, ``labels``, ``cpu``, ``memory``)."""
        return ModifySystem.parse_modify(
            config=self.config,
            guid=request.get("tycho-guid", None),
            labels=request.get("labels", {}),
            cpu=request.get("cpu", None),
            memory=request.get("memory", None),
        )

    @staticmethod
    def is_valid_backplane(backplane: object) -> bool:
        return ComputeFactory.is_valid_backplane(backplane)

    @staticmethod
    def supported_backplanes() -> list[str]:
        return list(supported_backplanes)
