"""Optional dependencies: which extra brings which library, and one clear line when one is missing.

``pip install mltricks`` brings the core families with what they use (torch, torchvision, numpy,
scipy, scikit-learn). Everything else comes with an extra (``EXTRAS``, the same lists as
``pyproject.toml``): ``mltricks[lab]`` the lab, its command and report; ``mltricks[nlp]``
``mltricks.nlp``; ``mltricks[tensorboard]`` and ``mltricks[mlflow]`` run tracking. A package whose
extra is missing stops at import with one line that names the extra::

    ModuleNotFoundError: mltricks.nlp needs transformers, tokenizers (not installed): pip install 'mltricks[nlp]'

The check looks the modules up without importing them (``importlib.util.find_spec``), so a
family that imports a heavy library lazily stays quick to import.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from mltricks._utils.checks import check_choice

EXTRAS: dict[str, tuple[str, ...]] = {
    "lab": ("matplotlib", "accelerate", "tqdm", "torchmetrics"),
    "nlp": ("transformers", "tokenizers"),
    "tensorboard": ("tensorboard",),
    "mlflow": ("mlflow",),
    "dask": ("distributed",),
}


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported (found on the path and not blocked in ``sys.modules``)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent that fails to import, a module without a spec
        return False


def missing_modules(extra: str) -> tuple[str, ...]:
    """The modules of ``extra`` (a key of ``EXTRAS``) that are not installed."""
    check_choice("extra", extra, EXTRAS)
    return tuple(module for module in EXTRAS[extra] if not is_installed(module))


class MissingExtraError(ModuleNotFoundError):
    """A part of mltricks was used without the extra that installs its libraries.

    Args:
        extra: the extra that brings the missing modules (a key of ``EXTRAS``).
        feature: what needs them, as the user wrote it (``"mltricks.nlp"``, ``"--track mlflow"``).
        missing: the missing modules (default: those of ``extra`` not installed now).
    """

    def __init__(self, extra: str, feature: str, missing: Sequence[str] | None = None) -> None:
        self.extra = extra
        self.missing = tuple(missing_modules(extra) if missing is None else missing)
        names = ", ".join(self.missing) or ", ".join(EXTRAS[extra])
        super().__init__(
            f"{feature} needs {names} (not installed): pip install 'mltricks[{extra}]'",
            name=self.missing[0] if self.missing else None,
        )


def require_extra(extra: str, feature: str) -> None:
    """Raise ``MissingExtraError`` naming ``extra`` when any of its modules is missing."""
    missing = missing_modules(extra)
    if missing:
        raise MissingExtraError(extra, feature, missing)
