"""The triplet-embeddings experiment's data path: augmentation reaches training batches only
(the seed's bug: one shared data set object, so the training transform was silently replaced by
the evaluation one)."""

from types import SimpleNamespace

import torch

from smallml.lab import engine
from smallml.lab.experiments import triplet_embeddings as te


def _data():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(40, 1, 8, 8, generator=generator)
    labels = torch.arange(40) % 4
    split = {"train": (images[:24], labels[:24]), "val": (images[24:], labels[24:])}
    return {**split, "test": split["val"], "names": list("abcd"), "photos": False}


def _batches_with_indices(cfg, data, seed):
    """The train loader's batches, with the indices its sampler drew (same seed, same draws)."""
    loader = te.train_loader(cfg, data, seed)
    sampler = te.ClassBalancedBatchSampler(
        data["train"][1], samples_per_class=cfg.samples_per_class, seed=seed
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


def test_random_affine_keeps_the_identity_when_it_draws_nothing():
    images = torch.rand(5, 3, 8, 8)
    same = te.random_affine(images, degrees=0.0, translate=0.0)
    torch.testing.assert_close(same, images, atol=1e-5, rtol=0)
    flipped = te.random_affine(images, degrees=0.0, translate=0.0, flip=True)
    for original, out in zip(images, flipped):  # each image is itself or its mirror
        assert torch.allclose(out, original, atol=1e-5) or torch.allclose(
            out, original.flip(-1), atol=1e-5
        )


def test_every_parameter_trains_in_the_experiment_step(tmp_path):
    """The seed's backbone stayed frozen: here one short fit changes the backbone weights."""
    data = _data()
    cfg = te.Config(width=4, epochs=1, samples_per_class=3, methods=("hard",), snapshots=1)
    ctx = SimpleNamespace(seed=0, first_seed=False, data=None)
    model = te.build_model(cfg, 1, 4, 2, photos=False)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    engine.seed_everything(0)
    trained, rows, _ = te.train(cfg, ctx, data, "hard", 2)
    changed = [k for k, v in trained.backbone.state_dict().items() if not torch.equal(v, before[k])]
    assert any("weight" in k for k in changed) and rows[0]["train_triplet"] >= 0
