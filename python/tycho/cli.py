"""Entry point of the ``tycho`` console script (the command line lives in the Rust core).

Before handing over it makes the process behave like a command-line tool: SIGINT and
SIGPIPE get their default actions (Ctrl-C stops a command at once; ``| head`` ends it
quietly; ``tycho api`` and ``up --wait`` install their own SIGINT/SIGTERM handling),
and log records of the core (targets ``tycho.api``, ``tycho.kube``: Python loggers of
those names) go to stderr: INFO for ``tycho api`` (the access log) and for culling
(``tycho.cull``: a line per system culled), WARNING otherwise, DEBUG with ``-d/--debug``.
"""

import signal
import sys

from tycho import _native


def _setup(args) -> None:
    for name in ("SIGINT", "SIGPIPE"):
        sig = getattr(signal, name, None)
        if sig is not None:
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (ValueError, OSError):  # not the main thread
                pass
    import logging

    debug = "-d" in args or "--debug" in args
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-5s %(name)s: %(message)s"))
        root.addHandler(handler)
    # The server's access log is INFO; the other commands say only what goes wrong.
    quiet = logging.INFO if "api" in args else logging.WARNING
    logging.getLogger("tycho").setLevel(logging.DEBUG if debug else quiet)
    # Culling says what it culled and why, one line each (docs/operations/culling.md).
    if not debug:
        logging.getLogger("tycho.cull").setLevel(logging.INFO)
    # Other libraries' records (the Kubernetes client retrying a connection) would repeat
    # what the one-line error says; -d shows them.
    root.setLevel(logging.WARNING if debug else logging.CRITICAL)


def main(argv=None) -> int:
    """Run ``tycho`` with ``argv`` (default: sys.argv) and exit with its code."""
    args = list(sys.argv if argv is None else argv)
    args[0] = "tycho"
    if argv is None:
        _setup(args[1:])
    code = _native.cli_main(args)
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
