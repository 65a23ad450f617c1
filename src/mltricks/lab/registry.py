"""The experiments the lab knows, and the eighteen systems they reproduce (docs/systems/).

An explicit table, in the systems' order (docs/systems/index.md): adding an experiment is one
line here plus its module in ``mltricks/lab/experiments/``. Modules are imported on demand, so
one broken experiment does not stop ``mltricks list`` or the others.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# The eighteen systems, in the order of the original request; each has its page under
# docs/systems/ (docs/hooks/results.py maps each title to its page).
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

# What the original projects reported, shown next to mltricks's measured results. Several of
# these rest on bugs, which each system's page under docs/systems/ describes.
EARLIER_RESULTS: dict[str, str] = {
    "Semi-Supervised Clustering (Cluster-Then-Label)": "no number; the moves never reached the "
    "centers, so it was k-means + majority vote",
    "Learning Rate Range Test": "no accuracy of the pick reported",
    "Cotton Embeddings with TripletMarginLoss": "figure was an overfit-one-batch check",
    "Unsupervised Classification Support": "test accuracy CE 0.75, CE+ST 0.76, CE+ME 0.78, "
    "all 0.78 (100 test images, one run, no unlabeled data used)",
    "Transfer Learning with U-Net": "model files empty; no result survives",
    "Self Training": "validation accuracy 0.598 -> peak 0.637 after 5 rounds -> 0.585 after 50 "
    "(test set used as validation)",
    "Autoencoder": "cross-reconstruction MSE 0.009 (CIFAR-100 AE on MNIST) vs 0.093",
    "Faster R-CNN Object Detection": "no mAP computed; every label was 0 (background)",
    "Meta Learning": "31% -> 84% on a 2-way task (8 vs 9), with a sign bug in the update",
    "Consistency Regularization": "lambda 0 / 0.3 / 0.6 / 1.0 -> 0.329 / 0.346 / 0.336 / 0.340 "
    "(one run, lambda picked on test)",
    "Multiple Instance Learning": "bag accuracy 0.90 (200 train / 40 test bags); attention 0.95 "
    "on the 2 of one bag",
}

# experiment name -> module
EXPERIMENTS: dict[str, str] = {
    "cluster-then-label": "mltricks.lab.experiments.cluster_then_label",
    "lr-range-test": "mltricks.lab.experiments.lr_range_test",
    "triplet-embeddings": "mltricks.lab.experiments.triplet_embeddings",
    "mimo": "mltricks.lab.experiments.mimo",
    "mc-dropout": "mltricks.lab.experiments.mc_dropout",
    "bert-mlm": "mltricks.lab.experiments.bert_mlm",
    "fgsm": "mltricks.lab.experiments.fgsm",
    "carlini-wagner": "mltricks.lab.experiments.carlini_wagner",
    "faster-rcnn": "mltricks.lab.experiments.faster_rcnn",
    "unsupervised-support": "mltricks.lab.experiments.unsupervised_support",
    "unet-transfer": "mltricks.lab.experiments.unet_transfer",
    "self-training": "mltricks.lab.experiments.self_training",
    "autoencoder": "mltricks.lab.experiments.autoencoder",
    "vae": "mltricks.lab.experiments.vae",
    "fake-news": "mltricks.lab.experiments.fake_news",
    "reptile": "mltricks.lab.experiments.reptile",
    "positional-encoding": "mltricks.lab.experiments.positional_encoding",
    "saliency": "mltricks.lab.experiments.saliency",
    "consistency-regularization": "mltricks.lab.experiments.consistency_regularization",
    "mil": "mltricks.lab.experiments.mil",
}

# experiment-specific command-line options: flag -> Config field they set (like --set field=...)
OPTIONS: dict[str, str] = {
    "--model": "model_path",
    "--text-column": "text_column",
}

REQUIRED = ("SYSTEM", "DESCRIPTION", "DATA", "Config", "PRESETS", "CLAIMS", "run")
PRESET_NAMES = ("smoke", "quick", "full")


def names() -> list[str]:
    """All experiment names, in the order of their systems."""
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
        raise ValueError(f"{module.__name__}.SYSTEM {module.SYSTEM!r} is not in SYSTEMS")
    if set(module.PRESETS) != set(PRESET_NAMES):
        raise ValueError(f"{module.__name__}.PRESETS must define exactly {PRESET_NAMES}")
    return module
