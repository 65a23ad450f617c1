"""Object-detection data sets on disk: Pascal VOC XML folders and COCO JSON files.

- Pascal VOC: one XML file per image (``<annotation>`` with ``<filename>``, ``<size>`` and one
  ``<object>`` per box: ``<name>`` and ``<bndbox>`` ``xmin ymin xmax ymax``), the format of the
  Kaggle "litter on forest floor" set and of LabelImg. Files are found anywhere under the folder;
  the image is looked up next to the XML, in a sibling ``JPEGImages`` folder, or by the XML's
  stem with an image suffix. VOC corners are 1-based and inclusive (the devkit's convention):
  ``xmin - 1, ymin - 1, xmax, ymax`` becomes the 0-based, end-exclusive box; a 0 written by a
  0-based tool is kept at 0, and a negative corner is refused (it lies outside the image).
- COCO: one JSON file with ``images``, ``annotations`` (``bbox`` as ``x, y, width, height``) and
  ``categories``; category ids become labels ``1..K`` in id order. Crowd annotations are skipped.

An image without boxes is kept as a negative. Every target is checked by
``mltricks.detection.validate_targets`` with the file named in the message. Whatever bytes an
annotation file holds, the loaders return data or raise one ``ValueError`` naming the file
(``FileNotFoundError`` for a missing path or image).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mltricks._utils.checks import check_number, is_json_number
from mltricks.data.files import IMAGE_SUFFIXES, read_image_file, require_path

Target = dict[str, torch.Tensor]


@dataclass
class DetectionData(Dataset):
    """Images with detection targets; ``data[i]`` is ``(image, target)`` for a detection loader.

    Attributes:
        images: per image a float32 ``(C, H, W)`` tensor in [0, 1] (sizes may differ).
        targets: per image ``{"boxes": (n, 4) x1 y1 x2 y2, "labels": (n,) from 1}``.
        class_names: ``class_names[k]`` names label ``k``; ``class_names[0] == "background"``.
        names: per image the file it came from.
    """

    images: list[torch.Tensor]
    targets: list[Target]
    class_names: tuple[str, ...]
    names: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        return self.images[index], self.targets[index]

    @property
    def num_classes(self) -> int:
        """Object classes, background excluded."""
        return len(self.class_names) - 1

    def subset(self, indices: Sequence[int]) -> DetectionData:
        """The images at ``indices`` (for train / test splits)."""
        pick = [int(i) for i in indices]
        return DetectionData(
            [self.images[i] for i in pick],
            [self.targets[i] for i in pick],
            self.class_names,
            [self.names[i] for i in pick],
        )


def _read_image(path: Path, max_side: int | None) -> tuple[torch.Tensor, tuple[float, float]]:
    """An RGB image as ``(3, H, W)`` in [0, 1], shrunk so its longer side is at most
    ``max_side``; also the original ``(width, height)`` its coordinates refer to."""
    from PIL import Image

    image = read_image_file(path, "RGB")
    original = (float(image.width), float(image.height))
    if max_side is not None and max(image.size) > max_side:
        scale = max_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array.transpose(2, 0, 1).copy()), original


def _rescale(
    box: Sequence[float], original: tuple[float, float], image: torch.Tensor
) -> list[float]:
    """``x1, y1, x2, y2`` in the original image's pixels, in the (resized) ``image``'s pixels.

    Each axis has its own factor (the sides were rounded separately), and ``v * new / old``
    maps ``old`` to exactly ``new``: a box touching an edge still touches it, never beyond.
    """
    width, height = original
    new_height, new_width = (float(side) for side in image.shape[1:])
    x1, y1, x2, y2 = box
    return [
        x1 * new_width / width,
        y1 * new_height / height,
        x2 * new_width / width,
        y2 * new_height / height,
    ]


def _finish(
    images: list[torch.Tensor],
    boxes: list[list[list[float]]],
    labels: list[list[int]],
    class_names: Sequence[str],
    names: list[str],
) -> DetectionData:
    from mltricks.detection.targets import validate_targets  # detection builds on data, not back

    raw = [
        {
            "boxes": torch.tensor(b, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(lab, dtype=torch.int64),
        }
        for b, lab in zip(boxes, labels)
    ]
    sizes = [(int(image.shape[1]), int(image.shape[2])) for image in images]
    targets = validate_targets(raw, sizes, num_classes=len(class_names), names=names)
    return DetectionData(images, targets, ("background", *class_names), names)


# --- Pascal VOC ----------------------------------------------------------------------------------


_CORNERS = ("xmin", "ymin", "xmax", "ymax")


def _text(node: ElementTree.Element, tag: str, xml: Path) -> str:
    found = node.find(tag)
    if found is None or found.text is None or not found.text.strip():
        raise ValueError(f"VOC file '{xml}' lacks <{tag}> in <{node.tag}>")
    return found.text.strip()


def _voc_image(xml: Path, root: ElementTree.Element, base: Path) -> Path:
    filename = root.findtext("filename", "").strip()
    candidates = []
    if filename:
        candidates += [xml.parent / filename, xml.parent.parent / "JPEGImages" / filename]
        candidates += [base / filename]
    candidates += [xml.with_suffix(suffix) for suffix in IMAGE_SUFFIXES]
    candidates += [xml.with_suffix(suffix.upper()) for suffix in IMAGE_SUFFIXES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"VOC file '{xml}': its image '{filename or xml.stem}' is neither next to it, in "
        "../JPEGImages, nor under the data folder"
    )


def _check_class_names(names: list[str]) -> None:
    if len(set(names)) != len(names) or "background" in names:
        raise ValueError(
            f"class_names must be distinct and must not name 'background' (label 0); got {names!r}"
        )


def load_voc(
    path: str | Path, *, class_names: Sequence[str] | None = None, max_side: int | None = None
) -> DetectionData:
    """Every Pascal VOC XML file under ``path`` with its image.

    Args:
        path: a folder holding ``*.xml`` files (any depth) and their images.
        class_names: the object classes in label order (label 1 is ``class_names[0]``); an
            object with another name raises an error naming its file. None: the sorted set of
            names found.
        max_side: shrink images whose longer side is larger to this many pixels; boxes follow,
            each axis by its own rounded side's factor, so a box that touches an edge still
            does. None keeps the original size.

    Returns:
        A ``DetectionData`` in file-name order.

    Raises:
        FileNotFoundError: ``path``, or the image of an annotation, does not exist.
        ValueError: naming the file: no XML files, invalid XML, a missing tag, a corner that is
            not a number or is negative, an unknown class name, an unreadable image, or a box
            outside its image or of zero area.

    Example:
        One image with one box, written in VOC's layout (corners 1-based, inclusive):

        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> from mltricks.data import load_voc
        >>> folder = Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (64, 48)).save(folder / "photo.jpg")
        >>> _ = (folder / "photo.xml").write_text(
        ...     "<annotation><filename>photo.jpg</filename>"
        ...     "<size><width>64</width><height>48</height><depth>3</depth></size>"
        ...     "<object><name>plastic</name><bndbox><xmin>11</xmin><ymin>5</ymin>"
        ...     "<xmax>30</xmax><ymax>20</ymax></bndbox></object></annotation>")
        >>> data = load_voc(folder)
        >>> data.class_names, data[0][1]["boxes"].tolist(), data[0][1]["labels"].tolist()
        (('background', 'plastic'), [[10.0, 4.0, 30.0, 20.0]], [1])
    """
    root_dir = require_path(path, "VOC folder")
    if max_side is not None:
        check_number("max_side", max_side, low=1, integer=True)
    if class_names is not None:
        _check_class_names(list(class_names))
    files = sorted(root_dir.rglob("*.xml")) if root_dir.is_dir() else [root_dir]
    if not files:
        raise ValueError(f"VOC folder '{root_dir}' holds no .xml annotation files")
    parsed = []
    for xml in files:
        try:
            tree = ElementTree.parse(xml).getroot()
        except (ElementTree.ParseError, LookupError) as error:  # LookupError: unknown encoding
            raise ValueError(f"VOC file '{xml}' is not valid XML: {error}") from None
        objects = []
        for index, obj in enumerate(tree.iter("object")):
            box = obj.find("bndbox")
            if box is None:
                raise ValueError(f"VOC file '{xml}': an <object> lacks <bndbox>")
            try:
                corners = [float(_text(box, tag, xml)) for tag in _CORNERS]
            except ValueError as error:
                if "lacks" in str(error):
                    raise
                raise ValueError(f"VOC file '{xml}': a <bndbox> value is not a number") from None
            name = _text(obj, "name", xml)
            negative = [(tag, value) for tag, value in zip(_CORNERS, corners) if value < 0]
            if negative:
                tag, value = negative[0]
                raise ValueError(
                    f"VOC file '{xml}': <object> {index} ({name!r}) has {tag}={value:g}; VOC "
                    "corners are pixel indices from 1 (0 from 0-based tools), so a negative "
                    "one lies outside the image"
                )
            objects.append((name, corners))
        parsed.append((xml, tree, objects))
    found = sorted({name for _, _, objects in parsed for name, _ in objects})
    names_in_order = list(class_names) if class_names is not None else found
    _check_class_names(names_in_order)
    label_of = {name: i + 1 for i, name in enumerate(names_in_order)}
    images, all_boxes, all_labels, names = [], [], [], []
    for xml, tree, objects in parsed:
        image, original = _read_image(_voc_image(xml, tree, root_dir), max_side)
        boxes, labels = [], []
        for name, (xmin, ymin, xmax, ymax) in objects:
            if name not in label_of:
                raise ValueError(
                    f"VOC file '{xml}': unknown class name {name!r}; class_names allows "
                    f"{', '.join(repr(n) for n in names_in_order)}"
                )
            corners = [max(xmin - 1, 0.0), max(ymin - 1, 0.0), xmax, ymax]
            boxes.append(_rescale(corners, original, image))
            labels.append(label_of[name])
        images.append(image)
        all_boxes.append(boxes)
        all_labels.append(labels)
        names.append(str(xml))
    return _finish(images, all_boxes, all_labels, names_in_order, names)


# --- COCO ----------------------------------------------------------------------------------------


_COCO_KEYS = ("images", "annotations", "categories")
# the keys this loader reads in each entry, and the JSON types they may hold (ids are integers
# in COCO; some exporters write strings); a bbox is checked on its own, with the annotation's id
_ID = (int, str)
_COCO_ENTRY_KEYS: dict[str, dict[str, tuple[type, ...] | None]] = {
    "images": {"id": _ID, "file_name": (str,)},
    "annotations": {"image_id": _ID, "category_id": _ID, "bbox": None},
    "categories": {"id": _ID, "name": (str,)},
}
_JSON_TYPES = {int: "an integer", str: "a string"}


def _coco_entries(content: dict[str, Any], key: str, file: Path) -> list[dict[str, Any]]:
    """``content[key]``, checked to be a list of objects that have the keys this loader reads,
    each of a type it can use."""
    entries, required = content[key], _COCO_ENTRY_KEYS[key]
    if not isinstance(entries, list):
        raise ValueError(
            f"COCO file '{file}': '{key}' holds a {type(entries).__name__}; expected a list"
        )
    for index, entry in enumerate(entries):
        lacking = (
            [name for name in required if name not in entry] if isinstance(entry, dict) else []
        )
        if not isinstance(entry, dict) or lacking:
            problem = f"lacks {lacking}" if lacking else f"is a {type(entry).__name__}"
            raise ValueError(
                f"COCO file '{file}': {key}[{index}] {problem}; each entry of '{key}' is an "
                f"object with {list(required)}"
            )
        for name, types in required.items():
            value = entry[name]
            if types is not None and (not isinstance(value, types) or isinstance(value, bool)):
                wanted = " or ".join(_JSON_TYPES[t] for t in types)
                raise ValueError(
                    f"COCO file '{file}': {key}[{index}]['{name}'] is {value!r:.60}; expected "
                    f"{wanted}"
                )
    return entries


def load_coco(
    path: str | Path, *, image_root: str | Path | None = None, max_side: int | None = None
) -> DetectionData:
    """The images and boxes of one COCO JSON file.

    Args:
        path: the ``.json`` file (``images``, ``annotations``, ``categories``).
        image_root: the folder the images' ``file_name`` is relative to; default the JSON's
            folder (or its ``images`` sub-folder when the files are there).
        max_side: shrink images whose longer side is larger to this many pixels (boxes follow,
            as in ``load_voc``).

    Returns:
        A ``DetectionData`` in the order of the file's ``images``; ``class_names`` in category
        id order.

    Raises:
        FileNotFoundError: ``path``, or an image it lists, does not exist.
        ValueError: naming the file: not UTF-8 JSON, JSON nested too deeply, a missing key (top
            level or in an entry, with its index), an id, name or file name of the wrong type,
            a bbox that is not four numbers, an unknown image or category id, an unreadable
            image, or a box outside its image.
    """
    file = require_path(path, "COCO JSON file")
    if max_side is not None:
        check_number("max_side", max_side, low=1, integer=True)
    try:
        content = json.loads(file.read_bytes())
    except RecursionError:
        raise ValueError(
            f"COCO file '{file}' nests its JSON too deeply to read; a COCO file is an object of "
            "lists of flat objects"
        ) from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an over-long integer
        raise ValueError(f"COCO file '{file}' is not valid UTF-8 JSON: {error}") from None
    if not isinstance(content, dict):
        raise ValueError(f"COCO file '{file}' holds a JSON {type(content).__name__}, not an object")
    missing = [key for key in _COCO_KEYS if key not in content]
    if missing:
        raise ValueError(
            f"COCO file '{file}' lacks the keys {missing}; a COCO file has {_COCO_KEYS}"
        )
    entries = {key: _coco_entries(content, key, file) for key in _COCO_KEYS}
    # integer ids in their order, string ids after them (a file may mix them)
    categories = sorted(entries["categories"], key=lambda c: (isinstance(c["id"], str), c["id"]))
    label_of = {c["id"]: i + 1 for i, c in enumerate(categories)}
    root = Path(image_root) if image_root is not None else file.parent
    per_image: dict[Any, list[dict[str, Any]]] = {image["id"]: [] for image in entries["images"]}
    for annotation in entries["annotations"]:
        if annotation.get("iscrowd", 0):
            continue
        if annotation["image_id"] not in per_image:
            raise ValueError(
                f"COCO file '{file}': annotation {annotation.get('id')} names image_id "
                f"{annotation['image_id']!r}, which is not in 'images'"
            )
        if annotation["category_id"] not in label_of:
            raise ValueError(
                f"COCO file '{file}': annotation {annotation.get('id')} has category_id "
                f"{annotation['category_id']!r}; categories allows {sorted(label_of)}"
            )
        bbox = annotation["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(map(is_json_number, bbox)):
            raise ValueError(
                f"COCO file '{file}': annotation {annotation.get('id')} has bbox "
                f"{bbox!r:.80}; expected four numbers [x, y, width, height]"
            )
        per_image[annotation["image_id"]].append(annotation)
    images, all_boxes, all_labels, names = [], [], [], []
    for entry in entries["images"]:
        candidates = [root / entry["file_name"], root / "images" / entry["file_name"]]
        image_file = next((c for c in candidates if c.is_file()), None)
        if image_file is None:
            raise FileNotFoundError(
                f"COCO file '{file}': image '{entry['file_name']}' not found under '{root}'; "
                "pass image_root"
            )
        image, original = _read_image(image_file, max_side)
        boxes = []
        for annotation in per_image[entry["id"]]:
            x, y, width, height = (float(v) for v in annotation["bbox"])
            boxes.append(_rescale((x, y, x + width, y + height), original, image))
        images.append(image)
        all_boxes.append(boxes)
        all_labels.append([label_of[a["category_id"]] for a in per_image[entry["id"]]])
        names.append(f"{file} image {entry['file_name']}")
    return _finish(images, all_boxes, all_labels, [c["name"] for c in categories], names)


def load_detection_data(path: str | Path, *, max_side: int | None = None) -> DetectionData:
    """A VOC folder or a COCO JSON file, whichever ``path`` is (a folder holding exactly one
    ``.json`` file and no ``.xml`` is read as COCO)."""
    given = require_path(path, "detection data (VOC folder or COCO JSON)")
    if given.is_file():
        if given.suffix.lower() == ".json":
            return load_coco(given, max_side=max_side)
        return load_voc(given, max_side=max_side)
    jsons = sorted(given.glob("*.json"))
    if len(jsons) == 1 and not any(given.rglob("*.xml")):
        return load_coco(jsons[0], max_side=max_side)
    return load_voc(given, max_side=max_side)
