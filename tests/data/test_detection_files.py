"""VOC XML folders and COCO JSON files, written in their exact formats and read back."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mltricks.data import DetectionData, load_coco, load_detection_data, load_voc


def _image(path, width, height, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


def _voc(path, filename, width, height, objects):
    parts = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>0</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b in objects
    )
    path.write_text(
        f"<annotation><folder>images</folder><filename>{filename}</filename>"
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
        f"<segmented>0</segmented>{parts}</annotation>"
    )


def test_voc_folder_with_one_xml_per_image(tmp_path):
    _image(tmp_path / "a.jpg", 40, 30)
    _voc(
        tmp_path / "a.xml",
        "a.jpg",
        40,
        30,
        [("plastic", (1, 2, 10, 12)), ("glass", (5, 5, 40, 30))],
    )
    _image(tmp_path / "b.png", 20, 20, seed=1)
    _voc(tmp_path / "b.xml", "b.png", 20, 20, [])  # forest floor without litter: a negative
    data = load_voc(tmp_path)
    assert isinstance(data, DetectionData) and len(data) == 2
    assert data.class_names == ("background", "glass", "plastic")  # sorted names, from 1
    image, target = data[0]
    assert image.shape == (3, 30, 40) and image.dtype == torch.float32 and image.max() <= 1
    # VOC corners are 1-based and inclusive: (1, 2, 10, 12) covers columns 0..9, rows 1..11
    assert target["boxes"].tolist() == [[0, 1, 10, 12], [4, 4, 40, 30]]
    assert target["labels"].tolist() == [2, 1]
    assert data[1][1]["boxes"].shape == (0, 4) and data.names[1].endswith("b.xml")
    pixels = np.asarray(Image.open(tmp_path / "b.png"), dtype=np.float32) / 255
    assert torch.allclose(data[1][0], torch.from_numpy(pixels).permute(2, 0, 1))


def test_voc_layout_with_jpegimages_given_classes_and_shrinking(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    _image(tmp_path / "JPEGImages" / "x.jpg", 100, 50)
    _voc(tmp_path / "Annotations" / "x.xml", "x.jpg", 100, 50, [("metal", (11, 11, 50, 40))])
    data = load_voc(tmp_path, class_names=["plastic", "metal", "paper", "glass"], max_side=50)
    assert data.class_names[1:] == ("plastic", "metal", "paper", "glass")
    image, target = data[0]
    assert image.shape == (3, 25, 50)
    assert target["labels"].tolist() == [2]
    assert torch.allclose(target["boxes"], torch.tensor([[5.0, 5.0, 25.0, 20.0]]))


def test_voc_errors_name_the_file(tmp_path):
    _image(tmp_path / "a.jpg", 40, 30)
    _voc(tmp_path / "a.xml", "a.jpg", 40, 30, [("bottle cap", (1, 2, 10, 12))])
    with pytest.raises(ValueError, match=r"a\.xml': unknown class name 'bottle cap'.*'plastic'"):
        load_voc(tmp_path, class_names=["plastic"])
    _voc(tmp_path / "a.xml", "a.jpg", 40, 30, [("plastic", (1, 2, 55, 12))])
    with pytest.raises(ValueError, match=r"a\.xml: box 0 .* outside the image"):
        load_voc(tmp_path)
    # 1-based inclusive: xmin 6 to xmax 5 covers no column
    _voc(tmp_path / "a.xml", "a.jpg", 40, 30, [("plastic", (6, 2, 5, 12))])
    with pytest.raises(ValueError, match=r"a\.xml: box 0 .* zero area"):
        load_voc(tmp_path)
    _voc(tmp_path / "a.xml", "gone.jpg", 40, 30, [])
    (tmp_path / "a.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"gone\.jpg"):
        load_voc(tmp_path)
    (tmp_path / "a.xml").write_text("<annotation><object>")
    with pytest.raises(ValueError, match="not valid XML"):
        load_voc(tmp_path)
    with pytest.raises(FileNotFoundError, match="--data"):
        load_voc(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"no \.xml"):
        load_voc(_empty(tmp_path))
    with pytest.raises(ValueError, match="background"):
        load_voc(tmp_path, class_names=["background"])


def _empty(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def _coco(tmp_path):
    _image(tmp_path / "p.jpg", 32, 24)
    _image(tmp_path / "q.jpg", 16, 16, seed=2)
    content = {
        "images": [
            {"id": 7, "file_name": "p.jpg", "width": 32, "height": 24},
            {"id": 9, "file_name": "q.jpg", "width": 16, "height": 16},
        ],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 12, "bbox": [2, 3, 10, 5], "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [0, 0, 32, 24], "iscrowd": 0},
            {"id": 3, "image_id": 7, "category_id": 3, "bbox": [1, 1, 4, 4], "iscrowd": 1},
        ],
        "categories": [{"id": 12, "name": "glass"}, {"id": 3, "name": "metal"}],
    }
    (tmp_path / "litter.json").write_text(json.dumps(content))
    return content


def test_coco_json(tmp_path):
    _coco(tmp_path)
    data = load_coco(tmp_path / "litter.json")
    assert data.class_names == ("background", "metal", "glass")  # category id order, from 1
    image, target = data[0]
    assert image.shape == (3, 24, 32)
    # bbox x, y, width, height -> x1, y1, x2, y2; the crowd region is skipped
    assert target["boxes"].tolist() == [[2, 3, 12, 8], [0, 0, 32, 24]]
    assert target["labels"].tolist() == [2, 1]
    assert data[1][1]["boxes"].shape == (0, 4)  # an image without annotations is a negative
    assert len(load_detection_data(tmp_path)) == 2  # a folder with one JSON reads as COCO
    assert len(load_detection_data(tmp_path / "litter.json")) == 2


def test_coco_errors(tmp_path):
    content = _coco(tmp_path)
    content["annotations"][0]["category_id"] = 99
    (tmp_path / "bad.json").write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"bad\.json': annotation 1 has category_id 99"):
        load_coco(tmp_path / "bad.json")
    content["annotations"][0].update(category_id=3, bbox=[30, 3, 10, 5])
    (tmp_path / "bad.json").write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"p\.jpg: box 0 .* outside the image"):
        load_coco(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="lacks the keys"):
        load_coco(tmp_path / "bad.json")


def test_detection_data_subset_and_loader(tmp_path):
    from mltricks.detection import collate_detection

    _coco(tmp_path)
    data = load_coco(tmp_path / "litter.json").subset([1, 0])
    assert data.names[0].endswith("q.jpg") and data.num_classes == 2
    loader = torch.utils.data.DataLoader(data, batch_size=2, collate_fn=collate_detection)
    images, targets = next(iter(loader))
    assert [tuple(i.shape) for i in images] == [(3, 16, 16), (3, 24, 32)]
    assert [len(t["labels"]) for t in targets] == [0, 2]


# --- resizing keeps boxes inside the image -------------------------------------------------------

_SIDES = [(37, 23), (101, 59), (64, 63)]  # (width, height): sides that round both ways
_MAX_SIDES = [None, 7, 16, 22, 30, 36, 50, 63, 100]


def _inside_and_touching(data, touching):
    """Every box lies inside its image; the boxes listed in ``touching`` reach the given edges."""
    for image, target in data:
        height, width = image.shape[1:]
        boxes = target["boxes"]
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= width).all()
        assert (boxes[:, 3] <= height).all()
        for index, edges in touching.items():
            x1, y1, x2, y2 = boxes[index].tolist()
            assert ("left" not in edges or x1 == 0) and ("top" not in edges or y1 == 0)
            assert ("right" not in edges or x2 == width) and ("bottom" not in edges or y2 == height)


@pytest.mark.parametrize("max_side", _MAX_SIDES)
def test_voc_boxes_touching_the_four_edges_stay_inside_at_every_max_side(tmp_path, max_side):
    for i, (width, height) in enumerate(_SIDES):
        _image(tmp_path / f"{i}.png", width, height, seed=i)
        objects = [
            ("whole", (1, 1, width, height)),  # VOC 1-based inclusive: the whole image
            ("corner", (width - 4, height - 4, width, height)),  # right and bottom edges
            ("inner", (3, 5, 11, 13)),
        ]
        _voc(tmp_path / f"{i}.xml", f"{i}.png", width, height, objects)
    data = load_voc(tmp_path, class_names=["whole", "corner", "inner"], max_side=max_side)
    _inside_and_touching(data, {0: "left top right bottom", 1: "right bottom"})
    for (image, target), (width, height) in zip(data, _SIDES):
        new_height, new_width = image.shape[1:]
        if max_side is not None:
            assert max(new_width, new_height) == min(max_side, max(width, height))
        # each axis by its own factor: the inner box scaled by new side / old side
        expected = [2 * new_width / width, 4 * new_height / height]
        expected += [11 * new_width / width, 13 * new_height / height]
        assert torch.allclose(target["boxes"][2], torch.tensor(expected))


@pytest.mark.parametrize("max_side", _MAX_SIDES)
def test_coco_boxes_touching_the_four_edges_stay_inside_at_every_max_side(tmp_path, max_side):
    images, annotations = [], []
    for i, (width, height) in enumerate(_SIDES):
        _image(tmp_path / f"{i}.png", width, height, seed=i)
        images.append({"id": i, "file_name": f"{i}.png", "width": width, "height": height})
        for j, bbox in enumerate(([0, 0, width, height], [width - 4.5, height - 2.5, 4.5, 2.5])):
            annotations.append({"id": 10 * i + j, "image_id": i, "category_id": 1, "bbox": bbox})
    content = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "set.json").write_text(json.dumps(content))
    data = load_coco(tmp_path / "set.json", max_side=max_side)
    _inside_and_touching(data, {0: "left top right bottom", 1: "right bottom"})


# --- bad files: every error names the file and says what was expected ---------------------------


def _coco_without(tmp_path, change):
    content = _coco(tmp_path)
    change(content)
    (tmp_path / "bad.json").write_text(json.dumps(content))
    return tmp_path / "bad.json"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["images"][1].pop("file_name"), r"images\[1\] lacks \['file_name'\]"),
        (lambda c: c["images"][0].pop("id"), r"images\[0\] lacks \['id'\]"),
        (lambda c: c["annotations"][2].pop("bbox"), r"annotations\[2\] lacks \['bbox'\]"),
        (lambda c: c["annotations"][0].pop("image_id"), r"annotations\[0\] lacks \['image_id'\]"),
        (lambda c: c["categories"][1].pop("name"), r"categories\[1\] lacks \['name'\]"),
        (lambda c: c.update(images={"id": 7}), "'images' holds a dict; expected a list"),
        (lambda c: c["annotations"].append(3), r"annotations\[3\] is a int"),
        (lambda c: c["annotations"][0].update(bbox=[1, 2, 3]), r"bbox \[1, 2, 3\]; expected four"),
        (lambda c: c["annotations"][0].update(bbox="1 2 3 4"), "expected four numbers"),
    ],
)
def test_coco_missing_keys_name_the_file_and_entry(tmp_path, change, message):
    bad = _coco_without(tmp_path, change)
    with pytest.raises(ValueError, match=rf"COCO file '.*bad\.json': .*{message}"):
        load_coco(bad)


def test_coco_file_that_is_not_utf8_json(tmp_path):
    _coco(tmp_path)
    (tmp_path / "bad.json").write_bytes(b'{"images": [{"file_name": "caf\xe9.jpg"}]}')
    with pytest.raises(ValueError, match=r"bad\.json' is not valid UTF-8 JSON"):
        load_coco(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"bad\.json' holds a JSON list, not an object"):
        load_coco(tmp_path / "bad.json")


def test_truncated_image_is_named(tmp_path):
    _image(tmp_path / "a.png", 40, 30)
    _voc(tmp_path / "a.xml", "a.png", 40, 30, [("plastic", (1, 2, 10, 12))])
    (tmp_path / "a.png").write_bytes((tmp_path / "a.png").read_bytes()[:300])
    with pytest.raises(ValueError, match=r"image '.*a\.png' cannot be read"):
        load_voc(tmp_path)


@pytest.mark.parametrize(("corner", "tag"), [(0, "xmin"), (1, "ymin")])
def test_a_negative_voc_corner_is_refused_naming_file_object_and_value(tmp_path, corner, tag):
    # issue 23: xmin=-50 was clamped to 0 without a word
    _image(tmp_path / "a.jpg", 40, 30)
    box = [1, 2, 10, 12]
    box[corner] = -50
    _voc(tmp_path / "a.xml", "a.jpg", 40, 30, [("glass", (1, 1, 5, 5)), ("plastic", box)])
    with pytest.raises(ValueError, match=rf"a\.xml': <object> 1 \('plastic'\) has {tag}=-50;"):
        load_voc(tmp_path)
    # a 0 written by a 0-based tool is still read as the first pixel
    box[corner] = 0
    _voc(tmp_path / "a.xml", "a.jpg", 40, 30, [("plastic", box)])
    assert load_voc(tmp_path)[0][1]["boxes"][0, corner] == 0


def test_a_deeply_nested_coco_file_is_named(tmp_path):
    # issue 23: JSON nested 100,000 deep gave a bare RecursionError
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"COCO file '.*deep\.json' nests its JSON too deeply"):
        load_coco(tmp_path / "deep.json")
    (tmp_path / "deep.json").write_text('{"images": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ValueError, match=r"deep\.json' nests"):
        load_detection_data(tmp_path / "deep.json")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["images"][0].update(id=[7]), r"images\[0\]\['id'\] is \[7\]; expected an "),
        (lambda c: c["images"][0].update(file_name=3), r"\['file_name'\] is 3; expected a string"),
        (lambda c: c["categories"][0].update(id=None), r"\['id'\] is None; expected an integer"),
        (lambda c: c["categories"][0].update(name=True), r"\['name'\] is True; expected a str"),
        (lambda c: c["annotations"][0].update(image_id={}), r"\['image_id'\] is \{\}"),
        (lambda c: c["annotations"][0].update(bbox=7), r"bbox 7; expected four numbers"),
        (lambda c: c["annotations"][0].update(bbox=[1, 2, 3, 10**400]), "expected four numbers"),
    ],
)
def test_coco_values_of_the_wrong_type_name_the_file_and_entry(tmp_path, change, message):
    bad = _coco_without(tmp_path, change)
    with pytest.raises(ValueError, match=rf"COCO file '.*bad\.json': .*{message}"):
        load_coco(bad)


def test_coco_ids_may_be_strings(tmp_path):
    content = _coco(tmp_path)
    for entry in content["images"] + content["categories"]:
        entry["id"] = f"id-{entry['id']}"
    for annotation in content["annotations"]:
        annotation["image_id"] = f"id-{annotation['image_id']}"
        annotation["category_id"] = f"id-{annotation['category_id']}"
    (tmp_path / "litter.json").write_text(json.dumps(content))
    data = load_coco(tmp_path / "litter.json")
    assert data.class_names == ("background", "glass", "metal")  # "id-12" < "id-3"
    assert data[0][1]["labels"].tolist() == [1, 2]
