"""What a --data path holds, recognised from its file names, against folders laid out as each
format is published."""

import pytest

from mltricks.lab import data_formats
from mltricks.lab.data_formats import FORMATS, find_format, holds, mnist_folder, refusal

LAYOUTS = {
    "mnist": ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"],
    "mnist_mirror": ["train-images.idx3-ubyte"],  # some mirrors put a dot before idx
    "mnist_raw": ["MNIST/raw/train-images-idx3-ubyte"],  # torchvision's layout
    "mnist_sub": ["mnist/train-images-idx3-ubyte.gz", "cifar-100-python/train"],
    "cifar10": ["cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"],
    "cifar10_flat": ["data_batch_1"],
    "image_folder": ["healthy/a.jpg", "diseased/b.PNG"],
    "voc": ["Annotations/a.xml", "JPEGImages/a.jpg"],
    "coco": ["instances.json", "images/a.jpg"],
}


def _make(root, files):
    root.mkdir()
    for file in files:
        (root / file).parent.mkdir(parents=True, exist_ok=True)
        (root / file).write_bytes(b"")
    return root


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ("mnist", "mnist"),
        ("mnist_mirror", "mnist"),
        ("mnist_raw", "mnist"),
        ("mnist_sub", "mnist"),
        ("cifar10", "cifar10"),
        ("cifar10_flat", "cifar10"),
        ("image_folder", "image_folder"),
        ("voc", "voc"),
        ("coco", "coco"),
    ],
)
def test_each_published_layout_is_recognised(tmp_path, layout, expected):
    root = _make(tmp_path / layout, LAYOUTS[layout])
    assert find_format(root) == expected
    assert holds(root, expected)
    others = [name for name in FORMATS if name != expected and holds(root, name)]
    assert others == [], others  # VOC photos are no class folders, IDX files no CSV, ...


def test_files_are_csv_json_or_xml_by_their_suffix(tmp_path):
    for name, expected in (("t.csv", "csv"), ("boxes.json", "coco"), ("a.xml", "voc")):
        (tmp_path / name).write_text("x")
        assert find_format(tmp_path / name) == expected
    (tmp_path / "x.gz").write_bytes(b"")
    assert find_format(tmp_path / "x.gz") is None


def test_the_mnist_folder_is_the_one_load_mnist_reads(tmp_path):
    assert mnist_folder(_make(tmp_path / "a", LAYOUTS["mnist_raw"])) == tmp_path / "a"
    sub = _make(tmp_path / "b", LAYOUTS["mnist_sub"])
    assert mnist_folder(sub) == sub / "mnist"
    assert mnist_folder(_make(tmp_path / "c", [])) is None


def test_a_refusal_names_the_path_what_it_holds_and_what_is_read(tmp_path):
    cifar = _make(tmp_path / "cifar", LAYOUTS["cifar10"])
    assert refusal(cifar, ("mnist", "cifar10"), "fgsm") is None
    assert refusal(cifar, ("mnist",), "reptile") == (
        f"--data '{cifar}' holds the CIFAR-10 python batches (cifar-10-batches-py/data_batch_1, "
        "...); reptile reads an MNIST-format IDX folder (train-images-idx3-ubyte[.gz] and the "
        "three other IDX files) only"
    )
    empty = _make(tmp_path / "empty", [])
    assert "is a folder that holds no data set" in refusal(empty, ("csv",), "bert-mlm")
    with pytest.raises(ValueError, match="name must be a format, one of mnist, cifar10"):
        data_formats.holds(empty, "imagenet")
