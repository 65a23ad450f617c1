"""The "litter on forest floor" scene style: four litter kinds among benign look-alikes.

The detection data set of docs/systems/faster-rcnn.md: photos of forest floor with litter
(plastic, metal, paper, glass) annotated by boxes, and natural objects that are easily confused
with litter (reflecting puddles, colourful blossoms, berries) left unlabeled. This style draws the same situation in RGB:

- background: a brown, low-frequency-noise soil with scattered leaves and twigs;
- objects (labeled, classes from 1): ``plastic`` (a saturated bottle with a cap), ``metal`` (a
  silver can with cylindrical shading and a coloured band), ``paper`` (a pale crumpled sheet with
  printed lines), ``glass`` (a dark green or brown bottle with a neck and a glint);
- confounders (never labeled): a ``puddle`` (grey-blue and reflective, like metal), a
  ``blossom`` (saturated petals, like plastic), ``berries`` (dark glossy discs, like glass) and a
  ``pale stone`` (like paper).

Every painter draws from the generator it is given, so ``make_scenes(style="litter")`` is as
deterministic as the digits style. Use it through ``make_scenes(..., style="litter")``.
"""

from __future__ import annotations

import numpy as np

from mltricks.data.scene_style import SceneStyle

LITTER_CLASSES = ("background", "plastic", "metal", "paper", "glass")
CONFOUNDERS = ("puddle", "blossom", "berries", "pale stone")

Patch = tuple[np.ndarray, np.ndarray]  # (3, s, s) in [0, 1], (s, s) bool


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1]: rows ``yy`` and columns ``xx``."""
    coords = (np.arange(size) + 0.5) / size
    return np.meshgrid(coords, coords, indexing="ij")


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Noise that varies over about ``size / cells`` pixels (bilinear upsampling of a grid)."""
    coarse = rng.uniform(0.0, 1.0, size=(cells + 1, cells + 1))
    position = np.linspace(0, cells, size)
    low = np.minimum(position.astype(int), cells - 1)
    frac = position - low
    rows = coarse[low] * (1 - frac)[:, None] + coarse[low + 1] * frac[:, None]
    return rows[:, low] * (1 - frac)[None] + rows[:, low + 1] * frac[None]


def _colour(rgb: tuple[float, float, float], shade: np.ndarray) -> np.ndarray:
    """An RGB image ``(3, s, s)``: ``rgb`` scaled by a per-pixel ``shade``."""
    return np.clip(np.asarray(rgb, np.float32)[:, None, None] * shade[None], 0.0, 1.0)


def _orient(rng: np.random.Generator, patch: np.ndarray, mask: np.ndarray) -> Patch:
    """Rotate by a random multiple of 90 degrees and maybe mirror (litter lies any way round)."""
    turns, flip = int(rng.integers(4)), bool(rng.integers(2))
    patch, mask = np.rot90(patch, turns, axes=(1, 2)), np.rot90(mask, turns)
    if flip:
        patch, mask = patch[:, :, ::-1], mask[:, ::-1]
    return np.ascontiguousarray(patch, np.float32), np.ascontiguousarray(mask)


def _rounded_rect(yy: np.ndarray, xx: np.ndarray, box: tuple[float, ...], radius: float):
    """Mask of a rectangle ``(y0, y1, x0, x1)`` with rounded corners."""
    y0, y1, x0, x1 = box
    dy = np.maximum(np.maximum(y0 + radius - yy, yy - (y1 - radius)), 0.0)
    dx = np.maximum(np.maximum(x0 + radius - xx, xx - (x1 - radius)), 0.0)
    return (dy**2 + dx**2 <= radius**2) & (yy >= y0) & (yy <= y1) & (xx >= x0) & (xx <= x1)


# --- background -----------------------------------------------------------------------------------


def _forest_floor(rng: np.random.Generator, canvas: int) -> np.ndarray:
    soil = np.asarray([0.36, 0.26, 0.16])[:, None, None] * rng.uniform(0.85, 1.15)
    texture = 0.55 * _smooth_noise(rng, canvas, 6) + 0.45 * _smooth_noise(rng, canvas, 20)
    image = soil * (0.7 + 0.6 * texture)[None]
    yy, xx = np.mgrid[0:canvas, 0:canvas]
    for _ in range(int(rng.integers(canvas // 6, canvas // 3 + 1))):  # fallen leaves
        cy, cx = rng.uniform(0, canvas, size=2)
        length, width, angle = rng.uniform(3, 9), rng.uniform(1.5, 3.5), rng.uniform(0, np.pi)
        u = (yy - cy) * np.cos(angle) + (xx - cx) * np.sin(angle)
        v = -(yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle)
        leaf = (u / length) ** 2 + (v / width) ** 2 <= 1
        tone = rng.choice([[0.45, 0.3, 0.12], [0.3, 0.35, 0.12], [0.5, 0.38, 0.2]])
        image[:, leaf] = np.asarray(tone)[:, None] * rng.uniform(0.7, 1.1)
    for _ in range(int(rng.integers(1, 4))):  # twigs: thin dark lines
        cy, cx = rng.uniform(0, canvas, size=2)
        angle = rng.uniform(0, np.pi)
        u = (yy - cy) * np.cos(angle) + (xx - cx) * np.sin(angle)
        v = -(yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle)
        twig = (np.abs(v) < 0.8) & (np.abs(u) < rng.uniform(6, 16))
        image[:, twig] = np.asarray([0.2, 0.14, 0.08])[:, None]
    image += rng.normal(0.0, 0.025, size=image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


# --- litter ---------------------------------------------------------------------------------------


def _plastic(rng: np.random.Generator, size: int) -> Patch:
    yy, xx = _grid(size)
    width = rng.uniform(0.32, 0.45)
    x0 = 0.5 - width / 2
    body = _rounded_rect(yy, xx, (0.18, 0.95, x0, x0 + width), width / 3)
    cap = _rounded_rect(yy, xx, (0.04, 0.2, 0.5 - width / 4, 0.5 + width / 4), 0.02)
    rgb = [(0.1, 0.35, 0.9), (0.9, 0.15, 0.1), (0.95, 0.85, 0.1), (0.15, 0.75, 0.85)]
    colour = rgb[int(rng.integers(len(rgb)))]
    # a flat, uniform tint with one bright highlight stripe: moulded plastic
    shade = 0.9 + 0.1 * rng.uniform(size=yy.shape)
    patch = _colour(colour, shade)
    stripe = body & (np.abs(xx - (x0 + width * 0.3)) < width * 0.08)
    patch[:, stripe] = 0.95
    patch[:, cap] = np.asarray([0.95, 0.95, 0.95])[:, None] * rng.uniform(0.6, 1.0)
    return _orient(rng, patch, body | cap)


def _metal(rng: np.random.Generator, size: int) -> Patch:
    yy, xx = _grid(size)
    width = rng.uniform(0.5, 0.65)
    x0 = 0.5 - width / 2
    mask = _rounded_rect(yy, xx, (0.12, 0.88, x0, x0 + width), 0.04)
    across = np.clip((xx - x0) / width, 0, 1)
    shade = 0.45 + 0.55 * np.sin(np.pi * across) ** 3  # cylinder: bright centre, dark rims
    patch = _colour((0.8, 0.82, 0.85), shade)
    band = mask & (yy > 0.35) & (yy < rng.uniform(0.55, 0.7))
    rgb = [(0.8, 0.1, 0.1), (0.1, 0.5, 0.2), (0.1, 0.2, 0.7)]
    patch[:, band] = _colour(rgb[int(rng.integers(len(rgb)))], shade)[:, band]
    rims = mask & ((np.abs(yy - 0.15) < 0.03) | (np.abs(yy - 0.85) < 0.03))
    patch[:, rims] = 0.5
    return _orient(rng, patch, mask)


def _paper(rng: np.random.Generator, size: int) -> Patch:
    yy, xx = _grid(size)
    corners = rng.uniform(0.05, 0.2, size=4)
    mask = (yy > corners[0]) & (yy < 1 - corners[1]) & (xx > corners[2]) & (xx < 1 - corners[3])
    folds = 0.85 + 0.15 * _smooth_noise(rng, size, 3)  # crumpled: soft light and dark facets
    base = (0.93, 0.91, 0.84) if rng.integers(2) else (0.95, 0.95, 0.95)
    patch = _colour(base, folds)
    lines = mask & (np.mod(yy * size, 4) < 1) & (xx > corners[2] + 0.1) & (xx < 0.8)
    patch[:, lines] = 0.35  # printed text
    return _orient(rng, patch, mask)


def _glass(rng: np.random.Generator, size: int) -> Patch:
    yy, xx = _grid(size)
    width = rng.uniform(0.38, 0.5)
    x0 = 0.5 - width / 2
    body = _rounded_rect(yy, xx, (0.4, 0.96, x0, x0 + width), width / 4)
    shoulder = ((yy - 0.42) / 0.14) ** 2 + ((xx - 0.5) / (width / 2)) ** 2 <= 1
    neck = (yy > 0.06) & (yy < 0.42) & (np.abs(xx - 0.5) < width / 6)
    mask = body | shoulder | neck
    colour = (0.1, 0.4, 0.12) if rng.integers(2) else (0.42, 0.22, 0.05)
    patch = _colour(colour, 0.8 + 0.3 * _smooth_noise(rng, size, 2))
    glint = mask & (np.abs(xx - (x0 + width * 0.25)) < 0.03) & (yy > 0.45) & (yy < 0.85)
    patch[:, glint] = 0.9
    return _orient(rng, patch, mask)


_LITTER = (_plastic, _metal, _paper, _glass)


# --- confounders ----------------------------------------------------------------------------------


def _puddle(rng: np.random.Generator, size: int) -> Patch:
    yy, xx = _grid(size)
    lobes = int(rng.integers(2, 5))  # an integer, so the outline closes
    wobble = 0.1 * np.sin(lobes * np.arctan2(yy - 0.5, xx - 0.5) + rng.uniform(0, 6))
    radius = np.hypot((yy - 0.5) / rng.uniform(0.3, 0.45), (xx - 0.5) / rng.uniform(0.35, 0.48))
    mask = radius < 1 + wobble
    sky = 0.55 + 0.4 * (1 - yy) + 0.1 * _smooth_noise(rng, size, 4)  # a reflected sky gradient
    return _colour((0.62, 0.7, 0.8), sky), mask


def _blossom(rng: np.random.Generator, size: int) -> Patch:
    yy, xx = _grid(size)
    angle = np.arctan2(yy - 0.5, xx - 0.5) + rng.uniform(0, np.pi)
    radius = np.hypot(yy - 0.5, xx - 0.5)
    petals = int(rng.integers(5, 7))
    mask = radius < 0.26 + 0.2 * np.abs(np.cos(petals / 2 * angle))
    rgb = [(0.1, 0.35, 0.9), (0.9, 0.15, 0.1), (0.95, 0.85, 0.1), (0.9, 0.45, 0.8)]
    patch = _colour(rgb[int(rng.integers(len(rgb)))], 0.8 + 0.2 * (1 - radius))
    patch[:, radius < 0.12] = np.asarray([0.95, 0.8, 0.1])[:, None]
    return patch, mask


def _berries(rng: np.random.Generator, size: int) -> Patch:
    yy, xx = _grid(size)
    mask = np.zeros_like(yy, dtype=bool)
    patch = np.zeros((3, size, size), np.float32)
    colour = [(0.6, 0.05, 0.1), (0.12, 0.1, 0.35), (0.1, 0.3, 0.1)][int(rng.integers(3))]
    for _ in range(int(rng.integers(3, 7))):
        cy, cx, r = rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75), rng.uniform(0.12, 0.2)
        disc = np.hypot(yy - cy, xx - cx) < r
        glossy = 0.75 + 0.5 * np.clip(1 - np.hypot(yy - cy + r / 2, xx - cx + r / 2) / r, 0, 1)
        patch[:, disc] = _colour(colour, glossy)[:, disc]
        mask |= disc
    return patch, mask


def _pale_stone(rng: np.random.Generator, size: int) -> Patch:
    yy, xx = _grid(size)
    radius = np.hypot((yy - 0.5) / rng.uniform(0.3, 0.45), (xx - 0.5) / rng.uniform(0.3, 0.45))
    mask = radius < 1
    shade = 0.75 + 0.25 * (1 - radius) + 0.1 * _smooth_noise(rng, size, 5)
    return _colour((0.8, 0.78, 0.72), shade), mask


_CONFOUNDERS = (_puddle, _blossom, _berries, _pale_stone)


def litter_style(source: str) -> SceneStyle:
    """The litter-on-forest-floor painters for ``make_scenes(style="litter")``.

    Args:
        source: unused (every scene is drawn fresh); kept for the ``STYLES`` signature, where the
            digits style uses it to choose held-out digits. Held-out litter scenes come from
            another ``seed``.

    Returns:
        A 3-channel ``SceneStyle`` with classes ``plastic, metal, paper, glass`` (1..4) and
        unlabeled confounders (puddles, blossoms, berries, pale stones).
    """

    def paint_object(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, int]:
        label = int(rng.integers(len(_LITTER)))
        patch, mask = _LITTER[label](rng, size)
        return patch, mask, label + 1

    def paint_distractor(rng: np.random.Generator, size: int) -> Patch:
        return _CONFOUNDERS[int(rng.integers(len(_CONFOUNDERS)))](rng, size)

    return SceneStyle(
        channels=3,
        class_names=LITTER_CLASSES,
        background=_forest_floor,
        paint_object=paint_object,
        paint_distractor=paint_distractor,
    )
