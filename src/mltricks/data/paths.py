"""Where real data sets are: paths the user gives, and short names for packaged data sets.

Nothing is downloaded. A short name stands for a folder that an operating-system package
installs; when the folder is missing, the error says which package provides it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataSetLocation:
    """Where a packaged data set is installed and how to get it."""

    folder: Path  # the folder the package installs
    install: str  # the command that installs it
    format: str  # what any other folder given instead must hold


DATA_SETS: dict[str, DataSetLocation] = {
    "fashion-mnist": DataSetLocation(
        Path("/usr/share/datasets/fashion-mnist"),
        "sudo apt-get install dataset-fashion-mnist",
        "an MNIST-format folder of IDX files (train-images-idx3-ubyte[.gz], "
        "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])",
    ),
}


def require_path(path: str | Path, what: str) -> Path:
    """Return ``path`` as a ``Path``; raise ``FileNotFoundError`` naming it and ``--data``."""
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise FileNotFoundError(
            f"{what} not found: '{resolved}' does not exist; pass an existing path with --data PATH"
        )
    return resolved


def resolve_data_path(path: str | Path) -> Path:
    """The folder a ``--data`` value stands for: a short name from ``DATA_SETS`` or a path.

    A path that exists is always taken as given, so a local folder named like a data set wins
    over the packaged one. Any other value that is a key of ``DATA_SETS`` (``"fashion-mnist"``)
    becomes the folder its package installs. Paths that do not exist are returned unchanged for
    the loader to report.

    Args:
        path: a short name or a path (``~`` is expanded).

    Returns:
        The path to read.

    Raises:
        FileNotFoundError: ``path`` names a packaged data set that is not installed; the message
            gives the install command and the format of a folder to pass instead.

    Example:
        >>> from pathlib import Path
        >>> from mltricks.data import DATA_SETS, resolve_data_path
        >>> resolve_data_path("~/mnist") == Path("~/mnist").expanduser()  # a path: as given
        True
        >>> str(DATA_SETS["fashion-mnist"].folder)  # "fashion-mnist", once its package is in
        '/usr/share/datasets/fashion-mnist'
    """
    given = Path(path).expanduser()
    location = DATA_SETS.get(str(path).strip().lower())
    if given.exists() or location is None:
        return given
    if not location.folder.is_dir():
        raise FileNotFoundError(
            f"data set '{path}' is not installed: '{location.folder}' does not exist. Install "
            f"it with `{location.install}` (Debian and Ubuntu), or pass the path of "
            f"{location.format} with --data PATH"
        )
    return location.folder
