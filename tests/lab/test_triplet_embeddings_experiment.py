"""The triplet-embeddings experiment: augmentation reaches training batches only (the seed's
bug: one shared data set object, so the training transform was silently replaced by the
evaluation one), and the triplet loss is what trains the embedding head."""

from types import SimpleNamespace

import pytest
import torch

from mltricks.data import RandomShiftRotate
from mltricks.lab import engine
from mltricks.lab.experiments import triplet_embeddings as te
from mltricks.metric_learning import ClassBalancedBatchSampler


def _data():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(40, 1, 8, 8, generator=generator)
    labels = torch.arange(40) % 4
    split = {"train": (images[:24], labels[:24]), "val": (images[24:], labels[24:])}
    return {**split, "test": split["val"], "names": list("abcd"), "photos": False}


def _batches_with_indices(cfg, data, seed):
    """The train loader's batches, with the indices its sampler drew (same seed, same draws)."""
    loader = te.train_loader(cfg, data, seed)
    sampler = ClassBalancedBatchSampler(
        data["train"][1], samples_per_class=cfg.samples_per_class, random_state=seed
    )
    return zip(loader, sampler)


def test_training_batches_are_augmented_and_evaluation_batches_are_not():
    data = _data()
    raw = data["train"][0].clone()
    cfg = te.Config(augment=True, samples_per_class=3)
    torch.manual_seed(0)
    for (x, y), indices in _batches_with_indices(cfg, data, seed=1):
        assert torch.equal(y, data["train"][1][indices])
        assert x.shape == raw[indices].shape
        changed = (x - raw[indices]).flatten(1).abs().amax(1) > 1e-3
        assert changed.all()  # every training sample is transformed
    assert torch.equal(data["train"][0], raw)  # the stored images stay untouched
    # evaluation reads the images as they are
    x_val, y_val = data["val"]
    (x_eval, _), *_ = engine.make_loader(x_val, y_val, batch_size=64)
    assert torch.equal(x_eval, x_val)


def test_without_augmentation_training_batches_are_the_images():
    data = _data()
    cfg = te.Config(augment=False, samples_per_class=3)
    for (x, _), indices in _batches_with_indices(cfg, data, seed=1):
        assert torch.equal(x, data["train"][0][indices])


@pytest.mark.parametrize("photos", [False, True])
def test_training_augmentation_mirrors_and_reflects_photos_only(photos):
    data = {**_data(), "photos": photos}
    cfg = te.Config(augment=True, samples_per_class=3)
    torch.manual_seed(0)
    batches = iter(_batches_with_indices(cfg, data, seed=2))
    state = torch.get_rng_state()  # after the loader drew its base seed
    (x, _), indices = next(batches)
    torch.set_rng_state(state)
    padding = "reflection" if photos else "zeros"
    expected = RandomShiftRotate(flip=photos, padding_mode=padding)(data["train"][0][indices])
    torch.testing.assert_close(x, expected)


@pytest.mark.parametrize("method", ["hard", "ce_only"])
def test_the_triplet_loss_trains_the_embedding_head_and_cross_entropy_alone_does_not(method):
    """The seed's backbone stayed frozen: one short fit changes the backbone weights under every
    method, and the embedding head only when a triplet loss is on (cross-entropy never reaches
    it), with a positive triplet loss at the start (the embeddings begin inside the margin)."""
    data = _data()
    cfg = te.Config(width=4, epochs=1, samples_per_class=3, methods=(method,), snapshots=1)
    ctx = SimpleNamespace(seed=0, first_seed=False, data=None)
    engine.seed_everything(0)  # train() seeds the same way: the same initial weights
    initial = te.build_model(cfg, 1, 4, 2, photos=False).state_dict()
    trained, rows, _ = te.train(cfg, ctx, data, method, 2)
    changed = {k for k, v in trained.state_dict().items() if not torch.equal(v, initial[k])}
    assert any(k.startswith("backbone.") and k.endswith("weight") for k in changed)
    assert {"classifier.weight", "classifier.bias"} <= changed
    head = {k for k in initial if k.startswith("embedding_head.")}
    if method == "ce_only":
        assert not changed & head and "train_triplet" not in rows[0]
    else:
        assert head <= changed and rows[0]["train_triplet"] > 0.1 * cfg.margin


def test_the_softmax_baseline_classifies_from_its_embedding_alone():
    """The baseline is a plain softmax classifier whose last hidden layer is the 2-d embedding:
    its logits are a linear map of the embedding (so cross-entropy shapes the embedding)."""
    cfg = te.Config(width=4)
    engine.seed_everything(0)
    model = te.build_model(cfg, 1, 4, 2, photos=False, method="softmax").eval()
    x = torch.rand(6, 1, 8, 8)
    logits, embeddings = model(x)
    assert embeddings.shape == (6, 2)
    torch.testing.assert_close(
        logits, embeddings @ model.classifier.weight.T + model.classifier.bias
    )
    loss = torch.nn.functional.cross_entropy(logits, torch.arange(6) % 4)
    loss.backward()
    assert model.embedding_head[-1].weight.grad.abs().sum() > 0


def test_the_budget_curve_ends_at_the_validation_knn_accuracy_and_leaves_training_alone():
    """The last point of the per-epoch k-NN curve is the validation k-NN accuracy of the trained
    model, and computing the curve does not change the training (random mining draws from the
    global generator, which the evaluation loaders also draw from)."""
    data = _data()
    cfg = te.Config(width=4, epochs=2, samples_per_class=3, methods=("random",), snapshots=1)
    ctx = SimpleNamespace(seed=0, first_seed=True, data=None)
    model, rows, _ = te.train(cfg, ctx, data, "random", 2)
    assert rows[-1]["val_knn_accuracy"] == te.scores(cfg, model, data, "val")["knn_accuracy"]
    again, _, _ = te.train(
        cfg, SimpleNamespace(seed=0, first_seed=False, data=None), data, "random", 2
    )
    for key, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
