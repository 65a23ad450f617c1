"""Property tests of the on-disk loaders: whatever bytes a file holds, a loader returns data or
raises one of the errors it documents, with the file named in the message; never another
exception type and never a hang (issue 23).

Each loader gets two kinds of input: arbitrary bytes, and files built in the format's own
structure with arbitrary values in it (IDX headers with any type, rank and sizes; pickled dicts
with CIFAR's keys and any values; VOC XML and COCO JSON with any text or JSON values where
numbers, names and ids belong), which reach the checks behind the parsers.
"""

import gzip
import json
import pickle
import shutil
import struct
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mltricks.data import load_cifar, load_coco, load_mnist, load_voc, read_idx

# few examples each: the whole module takes a few seconds (400 each also pass, in minutes); the
# deadline catches a slow path, the timeout a hang; no example database is written to the checkout
SETTINGS = settings(
    max_examples=40,
    deadline=5000,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
pytestmark = pytest.mark.timeout(120)


def _expect_named(load, folder, errors=(ValueError,)):
    """Run ``load()``; an error must be one of ``errors`` and name a file under ``folder``."""
    try:
        return load()
    except errors as error:
        assert str(folder) in str(error), f"{type(error).__name__} names no file: {error}"
        return None


class _Folder:
    """A fresh temporary folder per example (pytest's tmp_path is one per test)."""

    def __enter__(self):
        self.path = Path(tempfile.mkdtemp(prefix="mltricks-property-"))
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


# --- IDX -----------------------------------------------------------------------------------------

_IDX_TYPES = [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]


@st.composite
def idx_files(draw):
    """An IDX header of any type, rank and sizes (small or overflowing), then any body."""
    code = draw(st.sampled_from([*_IDX_TYPES, draw(st.integers(0, 255))]))
    sizes = draw(
        st.lists(
            st.one_of(st.integers(0, 6), st.integers(0, 2**32 - 1), st.just(65536)),
            max_size=draw(st.sampled_from([3, 4, 70])),
        )
    )
    header = bytes([0, 0, code, len(sizes) % 256]) + b"".join(struct.pack(">I", n) for n in sizes)
    body = draw(st.binary(max_size=300))
    raw = header + body if draw(st.booleans()) else (header + body)[: draw(st.integers(0, 40))]
    return gzip.compress(raw) if draw(st.booleans()) else raw


@SETTINGS
@given(content=st.one_of(st.binary(max_size=400), idx_files()))
def test_read_idx_returns_an_array_or_names_the_file(content):
    with _Folder() as folder:
        path = folder / "train-images-idx3-ubyte"
        path.write_bytes(content)
        array = _expect_named(lambda: read_idx(path), folder)
        assert array is None or isinstance(array, np.ndarray)


@SETTINGS
@given(images=st.one_of(st.binary(max_size=200), idx_files()), labels=idx_files())
def test_load_mnist_returns_images_or_names_a_file(images, labels):
    with _Folder() as folder:
        (folder / "train-images-idx3-ubyte").write_bytes(images)
        (folder / "train-labels.idx1-ubyte.gz").write_bytes(labels)
        result = _expect_named(lambda: load_mnist(folder), folder)
        if result is not None:
            x, y = result
            assert x.ndim == 4 and len(x) == len(y)


# --- CIFAR ---------------------------------------------------------------------------------------

_ARRAYS = st.builds(
    lambda shape, dtype, seed: np.random.default_rng(seed).integers(0, 256, shape).astype(dtype),
    st.sampled_from([(2, 3072), (1, 3072), (2, 10), (3,), (2, 3, 1024), ()]),
    st.sampled_from([np.uint8, np.int64, np.float32, np.int8]),
    st.integers(0, 3),
)
_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.integers(-(2**70), 2**70),
        st.floats(),
        st.text(max_size=5),
        st.binary(max_size=5),
        _ARRAYS,
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)
_KEYS = st.sampled_from([b"data", "data", b"labels", "labels", b"batch_label", "x", 1])


@st.composite
def pickled_batches(draw):
    """A pickle, by any protocol, of a dict with CIFAR's keys (bytes or str) and any values."""
    batch = draw(st.dictionaries(_KEYS, _VALUES, max_size=4))
    return pickle.dumps(batch, protocol=draw(st.integers(2, pickle.HIGHEST_PROTOCOL)))


@SETTINGS
@given(content=st.one_of(st.binary(max_size=400), pickled_batches()))
def test_load_cifar_returns_images_or_names_the_batch(content):
    with _Folder() as folder:
        rng = np.random.default_rng(0)
        good = {b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), b"labels": [1, 2]}
        for i in range(2, 6):
            (folder / f"data_batch_{i}").write_bytes(pickle.dumps(good, protocol=2))
        (folder / "data_batch_1").write_bytes(content)
        result = _expect_named(
            lambda: load_cifar(folder), folder, errors=(ValueError, pickle.UnpicklingError)
        )
        if result is not None:
            assert result[0].shape[1:] == (3, 32, 32)


# --- Pascal VOC ----------------------------------------------------------------------------------

_NUMBER_TEXT = st.one_of(
    st.integers(-100, 100).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.text(max_size=6),
)


@st.composite
def voc_files(draw):
    """A VOC annotation with any file name and any text where names and corners belong."""
    filename = draw(st.sampled_from(["a.png", "missing.jpg", "a.xml", ""]) | st.text(max_size=8))
    objects = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["plastic", "glass"]) | st.text(max_size=4),
                st.lists(_NUMBER_TEXT, min_size=4, max_size=4),
                st.booleans(),  # leave out <bndbox>
            ),
            max_size=3,
        )
    )
    parts = []
    for name, corners, no_box in objects:
        tags = "".join(
            f"<{tag}>{escape(value)}</{tag}>"
            for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), corners)
        )
        box = "" if no_box else f"<bndbox>{tags}</bndbox>"
        parts.append(f"<object><name>{escape(name)}</name>{box}</object>")
    text = f"<annotation><filename>{escape(filename)}</filename>{''.join(parts)}</annotation>"
    return text.encode("utf-8", "surrogatepass")


@SETTINGS
@given(content=st.one_of(st.binary(max_size=300), voc_files()))
def test_load_voc_returns_boxes_or_names_the_file(content):
    with _Folder() as folder:
        Image.new("RGB", (8, 6)).save(folder / "a.png")
        (folder / "a.xml").write_bytes(content)
        data = _expect_named(
            lambda: load_voc(folder), folder, errors=(ValueError, FileNotFoundError)
        )
        assert data is None or len(data) == 1


# --- COCO ----------------------------------------------------------------------------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=10,
)
_IDS = st.one_of(st.integers(0, 3), st.sampled_from(["1", "x"]), _JSON)


@st.composite
def coco_files(draw):
    """A COCO file's structure with any JSON value where ids, names, file names and boxes go."""
    number = st.integers(-5, 40) | st.floats() | st.integers(-(2**1100), 2**1100) | _JSON
    images = st.fixed_dictionaries(
        {"id": _IDS, "file_name": st.sampled_from(["p.png", "gone.png"]) | _JSON}
    )
    annotations = st.fixed_dictionaries(
        {
            "image_id": _IDS,
            "category_id": _IDS,
            "bbox": st.lists(number, min_size=3, max_size=5) | _JSON,
        },
        optional={"iscrowd": _JSON, "id": _JSON},
    )
    categories = st.fixed_dictionaries({"id": _IDS, "name": st.text(max_size=4) | _JSON})
    content = {
        "images": draw(st.lists(images, max_size=2) | _JSON),
        "annotations": draw(st.lists(annotations, max_size=3) | _JSON),
        "categories": draw(st.lists(categories, max_size=2) | _JSON),
    }
    return json.dumps(content, allow_nan=True).encode()


@SETTINGS
@given(
    content=st.one_of(
        st.binary(max_size=300), _JSON.map(lambda v: json.dumps(v).encode()), coco_files()
    )
)
def test_load_coco_returns_boxes_or_names_the_file(content):
    with _Folder() as folder:
        Image.new("RGB", (32, 24)).save(folder / "p.png")
        (folder / "litter.json").write_bytes(content)
        _expect_named(
            lambda: load_coco(folder / "litter.json"),
            folder,
            errors=(ValueError, FileNotFoundError),
        )
