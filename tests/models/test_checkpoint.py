"""load_weights_file: real torch.save files load; anything else gets a sentence naming the file."""

import pickle
import zipfile

import pytest
import torch

from mltricks.models import load_weights_file


@pytest.mark.parametrize("zip_format", [True, False])
def test_both_torch_save_formats_load(tmp_path, zip_format):
    state = {"conv.weight": torch.arange(6.0).reshape(2, 3), "step": 3}
    path = tmp_path / "w.pt"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    loaded = load_weights_file(path)
    assert torch.equal(loaded["conv.weight"], state["conv.weight"]) and loaded["step"] == 3


def _truncated(tmp_path, zip_format):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(100)}, path, _use_new_zipfile_serialization=zip_format)
    path.write_bytes(path.read_bytes()[:200])
    return path


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda d: d / "missing.pt", FileNotFoundError, "does not exist"),
        (lambda d: d, ValueError, "is a folder"),
        (
            lambda d: (d / "notes.txt").write_text("lr = 0.1\n") and d / "notes.txt",
            ValueError,
            r"not written by torch\.save.*b'lr = 0\.1\\n' \(text\)",
        ),
        (lambda d: _truncated(d, True), ValueError, "damaged, truncated"),
        (lambda d: _truncated(d, False), ValueError, "damaged, truncated"),
    ],
)
def test_files_that_are_not_weights_are_named(tmp_path, make, error, message):
    path = make(tmp_path)
    with pytest.raises(error, match=message) as raised:
        load_weights_file(path, what="Faster R-CNN weights")
    assert str(path) in str(raised.value) and "Faster R-CNN weights" in str(raised.value)


def test_a_zip_that_torch_did_not_write(tmp_path):
    path = tmp_path / "archive.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match=r"archive\.pt' is damaged, truncated or not a torch"):
        load_weights_file(path)


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch should-not-exist",))


@pytest.mark.parametrize("zip_format", [True, False])
def test_code_in_the_file_is_refused_and_never_run(tmp_path, monkeypatch, zip_format):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"w": _Payload()}, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(pickle.UnpicklingError, match=r"evil\.pt' names code to run.*system"):
        load_weights_file(path)
    assert not (tmp_path / "should-not-exist").exists()
