"""The networks the attack experiments attack: both trained on one share of the training images,
and the logistic-regression baseline fitted on that very share."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from mltricks.lab.attacked_networks import (
    AttackedNetworksTraining,
    logistic_regression_baseline,
    train_attacked_networks,
)
from mltricks.lab.baselines import logistic_regression_accuracy
from mltricks.lab.data_sources import train_test_images
from mltricks.lab.splits import validation_split


@pytest.fixture(scope="module")
def setting():
    cfg = AttackedNetworksTraining(width=2, epochs=1, lenet_epochs=1, val_fraction=0.2)
    ctx = SimpleNamespace(data=None, seed=3, device=torch.device("cpu"))
    torch.manual_seed(0)
    return cfg, ctx, train_test_images(None), train_attacked_networks(cfg, ctx, num_test=40)


def test_both_networks_are_scored_on_the_same_validation_share(setting):
    cfg, ctx, (x_train, y_train, x_test, y_test), networks = setting
    _, val = validation_split(y_train, cfg.val_fraction, random_state=ctx.seed, stratify=False)
    for model, reported in (
        (networks.cnn, networks.val_accuracy),
        (networks.lenet, networks.lenet_val_accuracy),
    ):
        assert not model.training
        with torch.no_grad():
            accuracy = float((model(x_train[val]).argmax(1) == y_train[val]).float().mean())
        assert reported == pytest.approx(accuracy, abs=1e-6)
    assert torch.equal(networks.x_test, x_test[:40]) and torch.equal(networks.y_test, y_test[:40])


def test_the_baseline_fits_on_the_networks_training_share_and_scores_the_attacked_images(setting):
    cfg, ctx, (x_train, y_train, x_test, y_test), _ = setting
    train, _ = validation_split(y_train, cfg.val_fraction, random_state=ctx.seed, stratify=False)
    expected = logistic_regression_accuracy(
        x_train[train], y_train[train], x_test[:40], y_test[:40]
    )
    assert logistic_regression_baseline(cfg, ctx, num_test=40) == expected
    everything = logistic_regression_accuracy(x_train[train], y_train[train], x_test, y_test)
    assert logistic_regression_baseline(cfg, ctx) == everything


@pytest.mark.parametrize("preset", ["smoke", "quick", "full"])
@pytest.mark.parametrize("real_data", [False, True], ids=["digits", "data"])
def test_both_attack_experiments_train_the_networks_alike(preset, real_data, tmp_path):
    """fgsm and carlini-wagner attack networks trained with the same settings on every preset,
    with and without --data (carlini-wagner once trained the digits' 60 LeNet epochs on all of
    Fashion-MNIST where fgsm trained 10)."""
    from mltricks.lab.config import DataSubset, resolve_config
    from mltricks.lab.experiments import carlini_wagner, fgsm
    from mltricks.lab.training import LeNetTraining, SmallCNNTraining

    names = {
        f.name
        for kind in (SmallCNNTraining, LeNetTraining, DataSubset)
        for f in dataclasses.fields(kind)
    } - {"max_test"}  # what the attack reads of the test images, not the training
    data = None
    if real_data:  # the lab knows a data set by its file names
        for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
            (tmp_path / name).touch()
        data = tmp_path
    configs = [resolve_config(module, preset, data=data) for module in (fgsm, carlini_wagner)]
    settings = [{name: getattr(cfg, name) for name in sorted(names)} for cfg in configs]
    assert settings[0] == settings[1]
