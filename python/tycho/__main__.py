"""``python -m tycho``: the same command line as the ``tycho`` script."""

from tycho.cli import main

main()
