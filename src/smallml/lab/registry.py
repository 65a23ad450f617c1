"""The experiments the lab knows, and the eighteen systems of SEED.md they reproduce.

An explicit table, in SEED.md order: adding an experiment is one line here plus its module in
``smallml/lab/experiments/``. Modules are imported on demand, so one broken experiment does not
stop ``smallml list`` or the others.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# The eighteen systems of SEED.md, in its order (section titles).
SYSTEMS: tuple[str, ...] = (
    "Semi-Supervised Clustering (Cluster-Then-Label)",
    "Learning Rate Range Test",
    "Cotton Embeddings with TripletMarginLoss",
    "MIMO Classification",
    "Monte Carlo Dropout",
    "BERT MLM",
    "Adversarial Attacks",
    "Faster R-CNN Object Detection",
    "Unsupervised Classification Support",
    "Transfer Learning with U-Net",
    "Self Training",
    "Autoencoder",
    "Fake News Feature Importance",
    "Meta Learning",
    "Positional Encoding",
    "CAM (+ SmoothGrad + Guided)",
    "Consistency Regularization",
    "Multiple Instance Learning",
)

# experiment name -> module
EXPERIMENTS: dict[str, str] = {
    "lr-range-test": "smallml.lab.experiments.lr_range_test",
    "positional-encoding": "smallml.lab.experiments.positional_encoding",
}

# experiment-specific command-line options: flag -> Config field they set (like --set field=...)
OPTIONS: dict[str, str] = {}

REQUIRED = ("SYSTEM", "DESCRIPTION", "DATA", "Config", "PRESETS", "CLAIMS", "run")
PRESET_NAMES = ("smoke", "quick", "full")


def names() -> list[str]:
    """All experiment names, in SEED.md order of their systems."""
    return list(EXPERIMENTS)


def load(name: str) -> ModuleType:
    """Import an experiment module and check it has what the lab needs."""
    if name not in EXPERIMENTS:
        raise KeyError(f"unknown experiment {name!r}; choose from: {', '.join(EXPERIMENTS)}")
    module = importlib.import_module(EXPERIMENTS[name])
    missing = [attr for attr in REQUIRED if not hasattr(module, attr)]
    if missing:
        raise TypeError(f"experiment module {module.__name__} lacks {', '.join(missing)}")
    if module.SYSTEM not in SYSTEMS:
        raise ValueError(f"{module.__name__}.SYSTEM {module.SYSTEM!r} is not a SEED.md system")
    if set(module.PRESETS) != set(PRESET_NAMES):
        raise ValueError(f"{module.__name__}.PRESETS must define exactly {PRESET_NAMES}")
    return module
