"""The two networks the attack experiments attack, and the baseline their accuracy is read against.

The ``fgsm`` and ``carlini-wagner`` experiments attack the same pair, trained alike for each
seed on the same images (the digits, or the ``--data`` folder as ``config.DataSubset`` reads it):
the small CNN of ``training.train_small_cnn`` and, as the strong simple baseline of a network,
the FGSM tutorial's LeNet (``training.train_lenet``) on the same training share, so that what an
attack reaches is not the fragility of one network. Both networks' clean accuracy is compared
with logistic regression fitted on that share.

- ``AttackedNetworksTraining``: the data and training settings both experiments' ``Config``
  inherit, declared once so that both attack the same networks;
- ``train_attacked_networks``: one seed's networks and test images;
- ``NETWORKS_DATA_CONFIG``, ``QUICK_NETWORKS_DATA_CONFIG``, ``SMOKE_NETWORKS``: the training
  settings with ``--data`` (full and quick presets) and of the smoke preset (with and without
  it), which both experiments' presets start from, so that they attack networks trained alike;
- ``NETWORK_BASELINES``: an experiment's ``BASELINES``, both networks' clean accuracy against
  logistic regression's ``logreg_accuracy``, which ``logistic_regression_baseline`` measures
  once per run, in ``summarize``.

Example:
    >>> from types import SimpleNamespace
    >>> import torch
    >>> cfg = AttackedNetworksTraining(width=2, epochs=1, lenet_epochs=1)
    >>> ctx = SimpleNamespace(data=None, seed=0, device=torch.device("cpu"))
    >>> networks = train_attacked_networks(cfg, ctx, num_test=50)
    >>> tuple(networks.x_test.shape), networks.cnn.training, networks.lenet.training
    ((50, 1, 8, 8), False, False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mltricks.lab.config import DataSubset
from mltricks.lab.data_sources import read_images
from mltricks.lab.experiment import Baseline
from mltricks.lab.training import (
    LeNetTraining,
    SmallCNNTraining,
    logistic_regression_on_training_share,
    train_lenet,
    train_small_cnn,
)
from mltricks.models import LeNet, SmallCNN

__all__ = [
    "NETWORKS_DATA_CONFIG",
    "NETWORK_BASELINES",
    "QUICK_NETWORKS_DATA_CONFIG",
    "SMOKE_NETWORKS",
    "AttackedNetworks",
    "AttackedNetworksTraining",
    "logistic_regression_baseline",
    "train_attacked_networks",
]


@dataclass
class AttackedNetworksTraining(DataSubset, SmallCNNTraining, LeNetTraining):
    """The images an attack experiment reads (``DataSubset``) and the settings of the two
    networks it attacks (``SmallCNNTraining``, ``LeNetTraining``; LeNet shares the CNN's
    ``val_fraction``). An attack experiment's ``Config`` inherits it and adds its attack's
    settings."""


@dataclass
class AttackedNetworks:
    """One seed's trained networks, in eval mode on the run's device, and the test images.

    Attributes:
        cnn: the attacked ``SmallCNN``.
        lenet: the FGSM tutorial's ``LeNet``, trained on the same training share.
        x_test: ``(N, C, H, W)`` test images on the run's device.
        y_test: ``(N,)`` their classes, on the run's device.
        val_accuracy: the CNN's accuracy on the held-out validation share.
        lenet_val_accuracy: LeNet's on the same share.
    """

    cnn: SmallCNN
    lenet: LeNet
    x_test: torch.Tensor
    y_test: torch.Tensor
    val_accuracy: float
    lenet_val_accuracy: float


def train_attacked_networks(
    cfg: AttackedNetworksTraining, ctx: Any, *, num_test: int | None = None
) -> AttackedNetworks:
    """Read the run's images (``read_images``) and train the CNN, then LeNet, on the same
    training share (the weights come from the global generator, which the lab seeds; the split
    and batch order from ``ctx.seed``).

    Args:
        cfg: the experiment's config.
        ctx: the run context (``data``, ``seed``, ``device``).
        num_test: keep only the first ``num_test`` test images (None: all of them).
    """
    x_train, y_train, x_test, y_test = read_images(cfg, ctx)
    cnn, training = train_small_cnn(x_train, y_train, cfg, random_state=ctx.seed, desc="cnn")
    lenet, lenet_training = train_lenet(
        x_train, y_train, cfg, val_fraction=cfg.val_fraction, random_state=ctx.seed
    )
    return AttackedNetworks(
        cnn.to(ctx.device),
        lenet.to(ctx.device),
        x_test[:num_test].to(ctx.device),
        y_test[:num_test].to(ctx.device),
        training["val_accuracy"],
        lenet_training["val_accuracy"],
    )


# With --data both networks train on every training image (Fashion-MNIST: 51,000 after the
# validation share): 8 epochs of the CNN and 10 of LeNet reach their clean accuracy there (the
# digits' 15 and 60 epochs are for 1,221 images). The quick preset trains on 6,000 of them.
NETWORKS_DATA_CONFIG = {"max_train": 0, "epochs": 8, "lenet_epochs": 10}
QUICK_NETWORKS_DATA_CONFIG = {"max_train": 6000, "epochs": 10, "lenet_epochs": 20}
# the smoke preset's, on the digits and with --data (where NETWORKS_DATA_CONFIG's epochs would
# otherwise apply): seconds long
SMOKE_NETWORKS = {"epochs": 2, "lenet_epochs": 2}

NETWORK_BASELINES = (
    Baseline("clean_accuracy", "logreg_accuracy", "the attacked CNN", "--set epochs=..."),
    Baseline("lenet_clean_accuracy", "logreg_accuracy", "the LeNet", "--set lenet_epochs=..."),
)


def logistic_regression_baseline(
    cfg: AttackedNetworksTraining, ctx: Any, *, num_test: int | None = None
) -> float:
    """Test accuracy of logistic regression on the first seed's training share (the images both
    networks trained on), on the attacked test images (the first ``num_test``; None: all): once
    per run, from ``summarize``, as on all 51,000 Fashion-MNIST training images it costs about two
    CPU-minutes and the share hardly changes between seeds."""
    x_train, y_train, x_test, y_test = read_images(cfg, ctx)
    return logistic_regression_on_training_share(
        x_train,
        y_train,
        x_test[:num_test],
        y_test[:num_test],
        cfg.val_fraction,
        random_state=ctx.seed,
    )
