"""Entry point of the ``tycho`` console script (the command line lives in the Rust core)."""

import sys

from tycho import _native


def main(argv=None) -> int:
    """Run ``tycho`` with ``argv`` (default: sys.argv) and exit with its code."""
    args = list(sys.argv if argv is None else argv)
    args[0] = "tycho"
    code = _native.cli_main(args)
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
