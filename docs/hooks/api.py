"""MkDocs hook: API references that show every public name of a family.

A family page renders its package with ``::: mltricks.<family>``. griffe, which reads the code
for mkdocstrings, cannot see a public name that shadows the submodule it comes from (one
technique per file, named after it: ``mltricks.attacks.fgsm`` is the function imported from
``attacks/fgsm.py``): the submodule wins, and the function would be missing from the page
(mkdocstrings/griffe#124). The hook finds those names by importing the family, adds a block that
renders each from its defining module (``mltricks.attacks.fgsm.fgsm``), and rewrites the
cross-references of every page that name the public path, so ``[fgsm][mltricks.attacks.fgsm]``
links to it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
from functools import cache
from typing import Any

FAMILIES = (
    "attacks",
    "data",
    "detection",
    "encodings",
    "ensembles",
    "explain",
    "meta",
    "metric_learning",
    "models",
    "nlp",
    "semi_supervised",
    "tabular",
    "tuning",
)
_BLOCK = re.compile(r"^::: (mltricks\.[a-z_]+)\s*$", flags=re.MULTILINE)


@cache
def shadowed_names(package: str) -> list[tuple[str, str]]:
    """``(public path, defining path)`` of the names in ``package.__all__`` that are also the
    names of its submodules (in ``__all__`` order)."""
    module = importlib.import_module(package)
    found = []
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.ismodule(value) or importlib.util.find_spec(f"{package}.{name}") is None:
            continue
        found.append((f"{package}.{name}", f"{value.__module__}.{value.__qualname__}"))
    return found


def _blocks(match: re.Match[str]) -> str:
    package = match[1]
    parts = [match[0]]
    for _public, defining in shadowed_names(package):
        parts.append(
            f"\n::: {defining}\n    options:\n      show_root_heading: true\n"
            "      show_root_toc_entry: true\n      show_root_full_path: false\n"
        )
    return "\n".join(parts)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Add the shadowed names after every ``::: mltricks.<family>`` block of a page, and point
    cross-references to their public paths at the rendered objects."""
    markdown = _BLOCK.sub(_blocks, markdown)
    if "][mltricks." not in markdown:  # no cross-reference: the families need not be imported
        return markdown
    for family in FAMILIES:
        for public, defining in shadowed_names(f"mltricks.{family}"):
            markdown = markdown.replace(f"][{public}]", f"][{defining}]")
    return markdown
