"""The mil experiment's budget curve and its logistic-regression baseline."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from mltricks.data import load_digits_images, make_bags
from mltricks.lab.baselines import logistic_regression
from mltricks.lab.experiments import mil


@pytest.fixture(scope="module")
def bags():
    images, labels = load_digits_images(split="train")
    test_images, test_labels = load_digits_images(split="test")
    train = make_bags(images, labels, num_bags=40, mean_bag_size=5, random_state=0)
    test = make_bags(test_images, test_labels, num_bags=30, mean_bag_size=5, random_state=1)
    return train, test


def test_a_curve_point_is_the_score_of_the_shorter_training(bags):
    """The curve's point after k steps equals the final scores of the same training run for k
    steps (a prefix: constant learning rate, and the test pass leaves the generators alone)."""
    train, test = bags
    cfg = mil.Config(width=2, hidden_dim=4, batch_size=8, steps=10, curve_steps=(5,))
    _, _, curve = mil._train_and_score(cfg, "attention", train, test, seed=0)
    short = mil.Config(width=2, hidden_dim=4, batch_size=8, steps=5)
    scores, _, last = mil._train_and_score(short, "attention", train, test, seed=0)
    assert [step for step, *_ in curve] == [5, 10]
    assert curve[0] == [5, scores["bag_auc"], scores["instance_auc"]] == last[0]


def test_single_instance_logistic_regression_scores_a_bag_by_its_most_positive_instance(bags):
    train, test = bags
    result = mil.single_instance_logreg(train, test)
    # brute force: one instance at a time, bag by bag
    x = np.concatenate([bag.flatten(1).numpy() for bag in train.instances])
    y = np.concatenate(
        [[int(label)] * len(bag) for bag, label in zip(train.instances, train.labels)]
    )
    model = logistic_regression().fit(x, y)
    bag_scores, instance_scores = [], []
    for bag in test.instances:
        probabilities = model.predict_proba(bag.flatten(1).numpy())[:, 1]
        bag_scores.append(max(probabilities))
        instance_scores.extend(probabilities)
    hidden = np.concatenate([h.numpy() for h in test.instance_labels])
    assert result["bag_auc"] == pytest.approx(roc_auc_score(test.labels.numpy(), bag_scores))
    assert result["instance_auc"] == pytest.approx(roc_auc_score(hidden, instance_scores))


def test_single_instance_logistic_regression_separates_an_obvious_class():
    # positives are bright, negatives dark: every positive bag holds the brightest instance
    generator = torch.Generator().manual_seed(0)
    images = torch.cat(
        [torch.rand(60, 1, 2, 2, generator=generator) * 0.3, torch.ones(60, 1, 2, 2)]
    )
    labels = torch.tensor([0] * 60 + [1] * 60)
    train = make_bags(
        images, labels, positive_class=1, num_bags=20, mean_bag_size=4, random_state=0
    )
    test = make_bags(images, labels, positive_class=1, num_bags=20, mean_bag_size=4, random_state=1)
    assert mil.single_instance_logreg(train, test) == {"bag_auc": 1.0, "instance_auc": 1.0}
