"""Reading a weights file (``--model PATH``) safely, with errors that say what went wrong."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6
_PICKLE_PROTOCOL = 0x80  # first byte of a pickle of protocol 2 or later: torch's legacy format


def load_weights_file(path: str | Path, *, what: str = "weights file") -> Any:
    """What ``torch.save`` wrote to ``path`` (usually a state dict), loaded on the CPU.

    Loading uses ``torch.load(weights_only=True)``: tensors, containers and numbers only, so a
    crafted file cannot run code. Before that, the file is checked to be in one of the two
    formats ``torch.save`` writes (a zip archive, or a pickle for the legacy format), so that a
    text file, an image or a folder given by mistake gets a sentence rather than a traceback.

    Args:
        path: the file.
        what: what the file should be, for messages (``"Faster R-CNN weights"``).

    Returns:
        The loaded object; the caller checks that it holds the weights it needs.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: naming the file: a folder, a file that ``torch.save`` did not write, or a
            damaged or truncated one.
        pickle.UnpicklingError: the file names code (a function or class) to run; refused.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import torch
        >>> from mltricks.models import load_weights_file, small_resnet18
        >>> path = Path(tempfile.mkdtemp()) / "resnet18.pt"
        >>> torch.save(small_resnet18(1, 10).state_dict(), path)
        >>> state = load_weights_file(path)
        >>> small_resnet18(1, 10).load_state_dict(state)
        <All keys matched successfully>
    """
    file = Path(path).expanduser()
    if not file.exists():
        raise FileNotFoundError(f"{what} not found: '{file}' does not exist (--model PATH)")
    if file.is_dir():
        raise ValueError(f"{what} '{file}' is a folder; expected a file written by torch.save")
    with open(file, "rb") as handle:
        head = handle.read(64)
    if head[:4] != _ZIP_MAGIC and head[:1] != bytes([_PICKLE_PROTOCOL]):
        raise ValueError(
            f"{what} '{file}' was not written by torch.save: expected a zip archive or a pickle, "
            f"but it starts with {head[:24]!r}" + (" (text)" if head and head.isascii() else "")
        )
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" in str(error):  # names code to run: keep the type
            lines = [line for line in str(error).splitlines() if "global" in line.lower()]
            raise pickle.UnpicklingError(
                f"{what} '{file}' names code to run and is refused (only tensors, containers "
                f"and numbers are loaded): {(lines or ['it names a function or class'])[0].strip()}"
            ) from None
        damaged: Exception = error
    except Exception as error:  # a damaged file fails in many ways, all meaning the same here
        damaged = error
    detail = (str(damaged).splitlines() or [""])[0][:160]
    raise ValueError(
        f"{what} '{file}' is damaged, truncated or not a torch.save file "
        f"({type(damaged).__name__}: {detail}); save or copy it again"
    )
