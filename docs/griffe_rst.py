"""Griffe extension of the manual: the package's reST roles read as Markdown code.

The docstrings of ``python/tycho`` are written for Sphinx (``:class:`TychoContext```,
``:func:`~tycho.x.f```); mkdocstrings renders Markdown, where such a role would show
its colons. This turns each role into inline code of its target (``~`` keeps the last
name, as Sphinx shows it). The docstrings themselves stay as they are.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|exc|data|obj|const):`(~?)([^`]+)`")


def _code(match: re.Match) -> str:
    target = match.group(2).strip()
    if match.group(1):
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def plain(text: str) -> str:
    """`text` with every reST role replaced by Markdown inline code."""
    return ROLE.sub(_code, text)


class ReSTRoles(Extension):
    """Rewrites the roles of each docstring as it is loaded."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)
