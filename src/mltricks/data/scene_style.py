"""What a scene style is: the painters ``make_scenes`` calls.

Its own module so that both ``scenes.py`` (which registers the styles) and each style's module
(``litter.py``) import it at the top, and neither imports the other at call time: the
dependencies run one way, ``scene_style <- litter <- scenes``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Painted", "SceneStyle"]

Painted = tuple[np.ndarray, np.ndarray]  # patch (C, s, s) in [0, 1], mask (s, s) bool


@dataclass
class SceneStyle:
    """The painters of one style. ``STYLES[name](source)`` builds it for ``make_scenes``.

    Attributes:
        channels: image channels ``C`` of every painter's output.
        class_names: ``class_names[k]`` names class ``k``; ``class_names[0] == "background"``.
        background: ``(rng, canvas) -> (C, canvas, canvas)`` array in [0, 1].
        paint_object: ``(rng, size) -> (patch (C, size, size), mask (size, size) bool, class)``
            with the class in ``1..len(class_names) - 1``.
        paint_distractor: ``(rng, size) -> (patch, mask)``: an unlabeled confounder.
    """

    channels: int
    class_names: tuple[str, ...]
    background: Callable[[np.random.Generator, int], np.ndarray]
    paint_object: Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray, int]]
    paint_distractor: Callable[[np.random.Generator, int], Painted]
