"""Exceptions of tycho, with the original's names and constructor signatures.

All of them derive from :class:`TychoException` (in tycho-api 1.17.3 only
ContextException did), so one ``except TychoException`` catches every tycho error.
"""

from typing import Optional

__all__ = [
    "TychoException",
    "StartException",
    "DeleteException",
    "ContextException",
    "ModifyException",
    "RequestKeyError",
    "RequestTypeError",
]


class TychoException(Exception):
    """Base of every tycho error. ``details`` carries extra text (e.g. a server reason).

    Errors raised by the native core also say, when known, the field at fault as a path
    into the input (``field``, e.g. ``"services.web.ports[0]"``) and, for a template
    error, the template and line (``template``, ``line``); None otherwise. A bug in
    tycho (a Rust panic) is a TychoException whose message says so.
    """

    field: Optional[str] = None
    template: Optional[str] = None
    line: Optional[int] = None

    def __init__(self, message, details=""):
        super().__init__(message)
        self.message = message
        self.details = details


class StartException(TychoException):
    """Starting a system failed; nothing of it was left on the cluster."""

    def __init__(self, message, details=""):
        Exception.__init__(self, message, details)
        self.message = message
        self.details = details


class DeleteException(TychoException):
    """Deleting a system failed."""

    def __init__(self, message, details=""):
        Exception.__init__(self, message, details)
        self.message = message
        self.details = details


class ContextException(TychoException):
    """The app registry could not be loaded or used."""

    def __init__(self, message, details=""):
        super().__init__(message, details)


class ModifyException(TychoException):
    """Modifying a system failed; no patch was half-applied."""

    def __init__(self, message, details=""):
        Exception.__init__(self, message, details)
        self.message = message
        self.details = details


class RequestKeyError(TychoException, KeyError):
    """A required request field is missing (the original raised a bare KeyError)."""

    def __str__(self):
        return self.message


class RequestTypeError(TychoException, TypeError):
    """A request is not the mapping it must be (the original raised a bare TypeError)."""

    def __str__(self):
        return self.message
