"""Generated scenes: objects and unlabeled distractors on a canvas, with boxes and masks.

A scene style supplies three painters: a background, an object (a patch, its pixel mask and its
class) and a distractor (a patch and its mask, never labeled). ``make_scenes`` places objects and
distractors without overlap and records boxes, labels and per-pixel class masks. Everything is
drawn from one ``numpy`` generator made from ``random_state``, so the same arguments give the same
scenes.

Class ids start at 1 everywhere (labels, masks, detection targets); 0 is the background, as
torchvision's detection models expect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mltricks._utils.checks import check_choice, check_number
from mltricks._utils.deprecation import renamed_argument
from mltricks._utils.randomness import NumpyRandomState, numpy_generator
from mltricks.data.digits import load_digits_images
from mltricks.data.litter import litter_style
from mltricks.data.scene_style import Painted, SceneStyle


@dataclass
class Scenes:
    """A batch of generated scenes.

    Attributes:
        images: ``(N, C, H, W)`` float32 in [0, 1].
        masks: ``(N, H, W)`` int64 per-pixel class, 0 = background (distractors are background).
        boxes: per scene a ``(n_i, 4)`` float32 tensor of ``x1, y1, x2, y2`` pixel corners
            (``x2``/``y2`` exclusive: a box around pixel columns 3..5 is ``x1=3, x2=6``).
        labels: per scene a ``(n_i,)`` int64 tensor of object classes in ``1..num_classes``.
        distractor_boxes: per scene a ``(m_i, 4)`` tensor: the unlabeled confounders.
        class_names: ``class_names[k]`` names class ``k``; ``class_names[0] == "background"``.
    """

    images: torch.Tensor
    masks: torch.Tensor
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    distractor_boxes: list[torch.Tensor]
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        """Number of object classes, background excluded."""
        return len(self.class_names) - 1

    def targets(self) -> list[dict[str, torch.Tensor]]:
        """Detection targets in torchvision's format: ``{"boxes", "labels"}`` per image."""
        return [{"boxes": b, "labels": lab} for b, lab in zip(self.boxes, self.labels)]


# --- the "digits" style: sklearn digits on a dark, slightly noisy canvas ------------------------


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    resized = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False)
    return resized[0, 0].numpy()


def _digits_background(rng: np.random.Generator, canvas: int) -> np.ndarray:
    return np.clip(rng.normal(0.05, 0.03, size=(1, canvas, canvas)), 0.0, 1.0)


def _digits_distractor(rng: np.random.Generator, size: int) -> Painted:
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    kind = rng.integers(3)
    if kind == 0:  # filled disc
        mask = (yy - 0.5) ** 2 + (xx - 0.5) ** 2 < rng.uniform(0.1, 0.25)
    elif kind == 1:  # rectangle outline
        edge = rng.uniform(0.1, 0.2)
        mask = ~((yy > edge) & (yy < 1 - edge) & (xx > edge) & (xx < 1 - edge))
    else:  # thick diagonal stroke
        mask = np.abs(yy - xx) < rng.uniform(0.08, 0.15)
    patch = mask.astype(np.float32)[None] * rng.uniform(0.5, 1.0)
    return patch, mask


def digits_style(source: str) -> SceneStyle:
    """Digits from ``load_digits_images(split=source)``, scaled up, on a dark canvas."""
    images, labels = load_digits_images(split=source)
    pool, classes = images[:, 0].numpy(), labels.numpy()

    def paint_object(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, int]:
        index = rng.integers(len(pool))
        patch = _resize(pool[index], size).clip(0.0, 1.0)
        return patch[None] * rng.uniform(0.8, 1.0), patch > 0.3, int(classes[index]) + 1

    return SceneStyle(
        channels=1,
        class_names=("background", *(f"digit {d}" for d in range(10))),
        background=_digits_background,
        paint_object=paint_object,
        paint_distractor=_digits_distractor,
    )


STYLES: dict[str, Callable[[str], SceneStyle]] = {"digits": digits_style, "litter": litter_style}


def _count(rng: np.random.Generator, spec: int | tuple[int, int]) -> int:
    return spec if isinstance(spec, int) else int(rng.integers(spec[0], spec[1] + 1))


def _check_range(name: str, spec: int | tuple[int, int], low: int) -> None:
    values = (spec,) if isinstance(spec, int) else tuple(spec)
    if len(values) not in (1, 2) or (len(values) == 2 and values[0] > values[1]):
        raise ValueError(
            f"{name} must be an int or a (low, high) pair with low <= high; got {spec!r}"
        )
    for value in values:
        check_number(name, value, low=low, integer=True)


@renamed_argument("seed", "random_state")
def make_scenes(
    num_scenes: int,
    *,
    canvas_size: int = 64,
    num_objects: int | tuple[int, int] = (1, 3),
    num_distractors: int | tuple[int, int] = (0, 2),
    object_size: int | tuple[int, int] = (16, 28),
    style: str = "digits",
    source: str = "all",
    random_state: NumpyRandomState = 0,
) -> Scenes:
    """Generate ``num_scenes`` canvases with labeled objects and unlabeled distractors.

    Args:
        num_scenes: number of scenes.
        canvas_size: height and width of each canvas in pixels.
        num_objects: objects per scene, an int or an inclusive ``(low, high)`` range; 0 gives
            scenes without objects (negatives for a detector).
        num_distractors: distractor shapes per scene, int or range.
        object_size: side of an object's square patch in pixels, int or range.
        style: a key of ``STYLES`` (``"digits"``: sklearn digits on a dark canvas).
        source: for ``"digits"``, which split of the digits the objects come from
            (``"train"``, ``"test"`` or ``"all"``), so held-out scenes can use held-out digits.
        random_state: seed of everything random: an int, a numpy ``Generator``/``RandomState``
            or None (``seed=`` is a deprecated alias).

    Returns:
        ``Scenes`` with images, masks, boxes, labels and distractor boxes.

    Example:
        >>> scenes = make_scenes(4, canvas_size=48, num_objects=1, random_state=0)
        >>> scenes.images.shape, scenes.labels[0].tolist()[0] >= 1
        (torch.Size([4, 1, 48, 48]), True)
    """
    check_number("num_scenes", num_scenes, low=1, integer=True)
    check_choice("style", style, tuple(STYLES))
    check_choice("source", source, ("all", "train", "test"))
    _check_range("num_objects", num_objects, 0)
    _check_range("num_distractors", num_distractors, 0)
    _check_range("object_size", object_size, 4)
    largest = object_size if isinstance(object_size, int) else object_size[1]
    check_number("canvas_size", canvas_size, low=largest, integer=True)

    painter = STYLES[style](source)
    rng = numpy_generator(random_state)
    images = np.zeros((num_scenes, painter.channels, canvas_size, canvas_size), np.float32)
    masks = np.zeros((num_scenes, canvas_size, canvas_size), np.int64)
    all_boxes, all_labels, all_distractors = [], [], []
    for i in range(num_scenes):
        images[i] = painter.background(rng, canvas_size)
        occupied: list[tuple[int, int, int, int]] = []
        boxes, labels, distractors = [], [], []
        plan = [True] * _count(rng, num_objects) + [False] * _count(rng, num_distractors)
        for is_object in plan:
            size = _count(rng, object_size)
            spot = _free_spot(rng, canvas_size, size, occupied)
            if spot is None:
                continue
            y, x = spot
            if is_object:
                patch, mask, label = painter.paint_object(rng, size)
            else:
                patch, mask = painter.paint_distractor(rng, size)
            if not mask.any():
                continue
            region = images[i, :, y : y + size, x : x + size]
            region[:] = np.where(mask[None], patch, region)
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            box = [x + cols[0], y + rows[0], x + cols[-1] + 1, y + rows[-1] + 1]
            occupied.append((y, x, size, size))
            if is_object:
                masks[i, y : y + size, x : x + size][mask] = label
                boxes.append(box)
                labels.append(label)
            else:
                distractors.append(box)
        all_boxes.append(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        all_labels.append(torch.tensor(labels, dtype=torch.int64))
        all_distractors.append(torch.tensor(distractors, dtype=torch.float32).reshape(-1, 4))
    return Scenes(
        images=torch.from_numpy(images.clip(0.0, 1.0)),
        masks=torch.from_numpy(masks),
        boxes=all_boxes,
        labels=all_labels,
        distractor_boxes=all_distractors,
        class_names=painter.class_names,
    )


def _free_spot(
    rng: np.random.Generator, canvas: int, size: int, occupied: list[tuple[int, int, int, int]]
) -> tuple[int, int] | None:
    """A top-left corner where a ``size`` square overlaps no occupied square (2 px apart)."""
    for _ in range(100):
        y, x = (int(v) for v in rng.integers(0, canvas - size + 1, size=2))
        if all(
            y + size + 2 <= oy or oy + oh + 2 <= y or x + size + 2 <= ox or ox + ow + 2 <= x
            for oy, ox, oh, ow in occupied
        ):
            return y, x
    return None
