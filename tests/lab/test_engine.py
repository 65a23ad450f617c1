import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mltricks.lab import engine


def _data(n=96, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    return x, (x[:, 0] - x[:, 1] > 0).long()


def test_fit_learns_and_records_history():
    engine.seed_everything(0)
    x, y = _data()
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    loader = engine.make_loader(x, y, batch_size=16, shuffle=True)
    history = engine.fit(
        model,
        loader,
        torch.optim.Adam(model.parameters(), 1e-2),
        epochs=5,
        val_loader=engine.make_loader(x, y, batch_size=32),
    )
    losses = history.column("train_loss")
    assert len(losses) == 5 and losses[-1] < losses[0]
    assert history.last["val_accuracy"] > 0.9 and len(history.steps) == 30
    assert {"epoch", "step", "lr", "seconds", "train_accuracy", "val_loss"} <= set(history.last)


def test_evaluate_equals_a_manual_computation():
    x, y = _data(50)
    model = nn.Linear(4, 2)
    metrics = engine.evaluate(model, engine.make_loader(x, y, batch_size=16))
    with torch.no_grad():
        logits = model(x)
    assert abs(metrics["loss"] - F.cross_entropy(logits, y).item()) < 1e-6
    assert abs(metrics["accuracy"] - (logits.argmax(1) == y).float().mean().item()) < 1e-6
    assert torch.allclose(engine.predict(model, engine.make_loader(x, y, batch_size=16)), logits)


def test_evaluate_and_predict_give_every_module_its_own_mode_back():
    # a frozen part in eval mode inside a model in train mode, and the reverse
    model = nn.Sequential(nn.Linear(4, 2), nn.Dropout(0.5), nn.Sequential(nn.Dropout(0.1)))
    x, y = _data(10)
    for root, frozen in ((True, False), (False, True)):
        model.train(root)
        model[2].train(frozen)
        modes = [m.training for m in model.modules()]
        engine.evaluate(model, engine.make_loader(x, y, batch_size=5))
        assert [m.training for m in model.modules()] == modes
        engine.predict(model, engine.make_loader(x, batch_size=5))
        assert [m.training for m in model.modules()] == modes


def test_custom_step_max_steps_and_stopping_callback():
    x, y = _data()
    model = nn.Linear(4, 2)
    seen = []

    def step(m, batch):
        loss = F.cross_entropy(m(batch[0]), batch[1])
        return loss, {"double": 2 * loss.item()}

    def callback(epoch, row):
        seen.append(epoch)
        row["extra"] = 1.0
        return epoch == 2

    loader = engine.make_loader(x, y, batch_size=32)
    history = engine.fit(
        model,
        loader,
        torch.optim.SGD(model.parameters(), 0.1),
        epochs=10,
        step_fn=step,
        callbacks=[callback],
    )
    assert seen == [1, 2] and history.last["extra"] == 1.0
    assert abs(history.last["train_double"] - 2 * history.last["train_loss"]) < 1e-9
    history = engine.fit(
        model, loader, torch.optim.SGD(model.parameters(), 0.1), epochs=10, max_steps=4
    )
    assert len(history.steps) == 4 and history.last["step"] == 4


def test_make_loader_shuffles_reproducibly():
    x = torch.arange(20)
    first = torch.cat(
        [b[0] for b in engine.make_loader(x, batch_size=5, shuffle=True, random_state=3)]
    )
    again = torch.cat(
        [b[0] for b in engine.make_loader(x, batch_size=5, shuffle=True, random_state=3)]
    )
    assert torch.equal(first, again) and not torch.equal(first, x)


def _poisoned_step(bad_step, poison=float("nan")):
    """Cross-entropy, plus ``poison`` at the ``bad_step``-th call (counting from 1)."""
    calls = []

    def step(model, batch):
        calls.append(1)
        loss = F.cross_entropy(model(batch[0]), batch[1])
        return loss + poison if len(calls) == bad_step else loss

    return step


def test_a_nan_loss_stops_fit_naming_the_epoch_and_step_before_the_update():
    x, y = _data(64)
    model = nn.Linear(4, 2)
    loader = engine.make_loader(x, y, batch_size=16)  # 4 steps per epoch
    optimizer = torch.optim.SGD(model.parameters(), 0.1)
    with pytest.raises(FloatingPointError, match=r"became nan at epoch 2, step 6 \(step 2 of"):
        engine.fit(model, loader, optimizer, epochs=3, step_fn=_poisoned_step(6))
    # the NaN step's update was not applied: the weights are finite
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_an_infinite_loss_can_stop_training_instead_of_raising():
    x, y = _data(64)
    model = nn.Linear(4, 2)
    loader = engine.make_loader(x, y, batch_size=16)
    history = engine.fit(
        model,
        loader,
        torch.optim.SGD(model.parameters(), 0.1),
        epochs=3,
        step_fn=_poisoned_step(6, float("inf")),
        on_nonfinite="stop",
    )
    assert history.diverged == {"epoch": 2, "step": 6, "loss": float("inf")}
    assert len(history.steps) == 5 and len(history.epochs) == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())
    with pytest.raises(ValueError, match="on_nonfinite"):
        engine.fit(model, loader, torch.optim.SGD(model.parameters(), 0.1), on_nonfinite="skip")


def test_epoch_listeners_hear_every_epoch_of_every_fit_inside_their_block_only():
    x, y = _data(32)
    model = nn.Linear(4, 2)
    loader = engine.make_loader(x, y, batch_size=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def add_norm(epoch, row):  # a fit callback's entries reach the listeners too
        row["norm"] = 1.0

    outer, inner = [], []
    with engine.on_epoch(lambda row, desc: outer.append((desc, row))):
        first = engine.fit(model, loader, optimizer, epochs=2, desc="a", callbacks=[add_norm])
        with engine.on_epoch(lambda row, desc: inner.append(desc)):
            engine.fit(model, loader, optimizer, epochs=1, desc="b")
        with pytest.raises(RuntimeError), engine.on_epoch(lambda row, desc: inner.append(desc)):
            raise RuntimeError("a failing seed")  # its listener is gone afterwards
        engine.fit(model, loader, optimizer, epochs=1, desc="c")
    engine.fit(model, loader, optimizer, epochs=1, desc="d")  # outside: nobody listens
    assert [desc for desc, _ in outer] == ["a", "a", "b", "c"] and inner == ["b"]
    assert [row for _, row in outer[:2]] == first.epochs and outer[0][1]["norm"] == 1.0
    outer[0][1]["train_loss"] = -1.0  # a listener's copy: the history keeps its own numbers
    assert first.epochs[0]["train_loss"] != -1.0
