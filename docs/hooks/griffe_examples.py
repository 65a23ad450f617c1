"""A griffe extension: ``Example:`` sections are read like ``Examples:`` ones.

The project's docstrings title their runnable examples ``Example:`` (both spellings are Google
style); griffe only recognises ``Examples:`` as an examples section and renders any other title
as an admonition of Markdown, where ``>>> x[0][1]`` reads as a reference link.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", flags=re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename the ``Example:`` section title to ``Examples:`` before the docstring is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
