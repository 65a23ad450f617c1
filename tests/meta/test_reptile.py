import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mltricks.data import FewShotTasks
from mltricks.meta import adapt, adapt_and_predict, reptile


def _model(seed=0, batch_norm=False):
    torch.manual_seed(seed)
    layers = [nn.Linear(4, 8)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(8))
    return nn.Sequential(*layers, nn.Tanh(), nn.Linear(8, 3))


def _tasks(count, seed=0, size=6):
    generator = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(size, 4, generator=generator),
            torch.randint(0, 3, (size,), generator=generator),
        )
        for _ in range(count)
    ]


def _sgd_copy(model, x, y, steps, lr):
    """The reference inner loop: torch.optim.SGD on a copy, full batch, in train mode."""
    trained = copy.deepcopy(model).train()
    optimizer = torch.optim.SGD(trained.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(trained(x), y).backward()
        optimizer.step()
    return trained


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_state_close(actual, expected):
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("vectorize", [True, False])
def test_one_task_one_step_and_meta_lr_one_is_one_sgd_step(vectorize):
    model, (x, y) = _model(), _tasks(1)[0]
    expected = _weights(_sgd_copy(model, x, y, steps=1, lr=0.1))
    reptile(
        model,
        [(x, y)],
        meta_iterations=1,
        meta_batch_size=1,
        inner_steps=1,
        inner_lr=0.1,
        meta_lr=1.0,
        vectorize=vectorize,
    )
    _assert_state_close(_weights(model), expected)


@pytest.mark.parametrize("vectorize", [True, False])
def test_outer_update_moves_towards_the_task_weights(vectorize):
    model, (x, y) = _model(), _tasks(1)[0]
    start = _weights(model)
    task_weights = _weights(_sgd_copy(model, x, y, steps=4, lr=0.2))
    reptile(
        model,
        [(x, y)],
        meta_iterations=1,
        meta_batch_size=1,
        inner_steps=4,
        inner_lr=0.2,
        meta_lr=0.3,
        vectorize=vectorize,
    )
    after = _weights(model)
    # w <- w + 0.3 (w_task - w): a sign bug (w - eps (w_task - w)) moves away from w_task
    _assert_state_close(after, {k: start[k] + 0.3 * (task_weights[k] - start[k]) for k in start})
    for key in start:
        assert (after[key] - task_weights[key]).norm() < (start[key] - task_weights[key]).norm()


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("vectorize", [True, False])
def test_meta_batches_average_fresh_tasks_and_meta_lr_anneals(vectorize, batch_norm):
    model, tasks = _model(batch_norm=batch_norm), _tasks(6)
    reference = copy.deepcopy(model)
    consumed = []

    def stream():
        for task in tasks:
            consumed.append(task)
            yield task

    result = reptile(
        model,
        stream(),
        meta_iterations=3,
        meta_batch_size=2,
        inner_steps=2,
        inner_lr=0.1,
        meta_lr=0.9,
        meta_lr_final=0.1,
        vectorize=vectorize,
    )
    assert len(consumed) == 6  # a new pair of tasks every meta-iteration, each task once
    assert np.allclose(result.meta_lrs, [0.9, 0.5, 0.1])
    for iteration, eps in enumerate([0.9, 0.5, 0.1]):
        start = _weights(reference)
        ends = [_weights(_sgd_copy(reference, *tasks[2 * iteration + b], 2, 0.1)) for b in range(2)]
        new = {
            k: start[k] + eps * sum(end[k] - start[k] for end in ends) / 2
            if start[k].is_floating_point()
            else ends[-1][k]  # BatchNorm's step counter follows the last task
            for k in start
        }
        reference.load_state_dict(new)
    _assert_state_close(_weights(model), _weights(reference))
    assert result.first_inner_losses.shape == (3,) and np.isfinite(result.last_inner_losses).all()


@pytest.mark.parametrize("vectorize", [True, False])
def test_running_statistics_are_interpolated_like_weights(vectorize):
    model, (x, y) = _model(batch_norm=True), _tasks(1)[0]
    start = _weights(model)
    task_state = _weights(_sgd_copy(model, x, y, steps=2, lr=0.1))
    reptile(
        model,
        [(x, y), (x, y)],  # twice: the vectorised path runs for meta-batches > 1
        meta_iterations=1,
        meta_batch_size=2,
        inner_steps=2,
        inner_lr=0.1,
        meta_lr=0.5,
        vectorize=vectorize,
    )
    after = _weights(model)
    for key in ("1.running_mean", "1.running_var", "0.weight"):
        torch.testing.assert_close(after[key], start[key] + 0.5 * (task_state[key] - start[key]))


def test_reptile_learns_the_shared_structure_of_a_task_family():
    """Regression tasks y = (w* + noise) x: the Reptile initialisation ends near w*."""
    generator = torch.Generator().manual_seed(0)
    target = torch.tensor([[2.0, -1.0, 0.5]])

    def tasks():
        while True:
            w = target + 0.3 * torch.randn(1, 3, generator=generator)
            x = torch.randn(10, 3, generator=generator)
            yield x, x @ w.T

    model = nn.Linear(3, 1, bias=False)
    nn.init.zeros_(model.weight)
    result = reptile(
        model,
        tasks(),
        meta_iterations=150,
        meta_batch_size=4,
        inner_steps=3,
        inner_lr=0.1,
        meta_lr=0.5,
        loss_fn=F.mse_loss,
        vectorize=False,  # a 3-weight model: the loop is faster than vmap's overhead
        callback=lambda i, m: (
            {"distance": float((m.weight.detach() - target).norm())} if i % 50 == 0 else None
        ),
    )
    assert (model.weight - target).norm() < 0.2
    assert [row["iteration"] for row in result.logs] == [50, 100, 150]
    assert result.logs[-1]["distance"] < result.logs[0]["distance"] + 0.05
    assert result.first_inner_losses[-20:].mean() < result.first_inner_losses[:5].mean() / 5


def test_reptile_draws_new_few_shot_tasks_every_iteration():
    images = torch.randn(60, 4)
    labels = torch.arange(6).repeat_interleave(10)
    tasks = FewShotTasks(images, labels, ways=3, shots=2, queries=0, random_state=0)
    seen = []

    def recording():
        for task in tasks:
            seen.append(tuple(sorted(task.classes.tolist())))
            yield task

    reptile(
        _model(),
        recording(),
        meta_iterations=10,
        meta_batch_size=2,
        inner_steps=1,
        inner_lr=0.1,
        meta_lr=1.0,
    )
    assert len(seen) == 20 and len(set(seen)) > 5


def test_adapt_returns_an_adapted_copy():
    model, (x, y) = _model(batch_norm=True), _tasks(1)[0]
    model.train()
    before = _weights(model)
    learner = adapt(model, x, y, steps=3, lr=0.2)
    reference = _sgd_copy(model, x, y, steps=3, lr=0.2)
    for name, param in reference.named_parameters():
        torch.testing.assert_close(learner.get_parameter(name), param)
    _assert_state_close(_weights(model), before)
    assert model.training and not learner.training
    assert all(p.grad is None for p in learner.parameters())
    unchanged = adapt(model, x, y, steps=0, lr=0.2, transductive=True)
    _assert_state_close(_weights(unchanged), before)


def test_adapt_is_non_transductive_with_support_statistics():
    model, (x, y) = _model(batch_norm=True), _tasks(1)[0]
    learner = adapt(model, x, y, steps=2, lr=0.1)
    # running statistics are exactly the support batch's, so eval mode reproduces the function
    # that was trained (training mode on the support batch)
    hidden = learner[0](x).detach()
    torch.testing.assert_close(learner[1].running_mean, hidden.mean(0))
    torch.testing.assert_close(learner[1].running_var, hidden.var(0, unbiased=False))
    trained = copy.deepcopy(learner).train()
    torch.testing.assert_close(learner(x), trained(x))
    # a query is classified on its own: alone or in a batch, the same logits
    queries = torch.randn(5, 4)
    torch.testing.assert_close(learner(queries)[:1], learner(queries[:1]))
    assert learner[1].momentum == model[1].momentum and not learner[1]._forward_pre_hooks
    # transductive: BatchNorm stays in training mode, the batch of queries sets the statistics
    transductive = adapt(model, x, y, steps=2, lr=0.1, transductive=True)
    assert transductive[1].training and not transductive[0].training
    assert not torch.allclose(transductive(queries)[:1], transductive(queries[:2])[:1])


@pytest.mark.parametrize("transductive", [False, True])
def test_adapt_and_predict_equals_adapt_task_by_task(transductive):
    images = torch.randn(60, 1, 6, 6)
    labels = torch.arange(6).repeat_interleave(10)
    tasks = FewShotTasks(images, labels, ways=3, shots=2, queries=4, random_state=0).sample(7)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3)
    )
    before = _weights(model)
    for steps in (0, 3):
        kwargs = dict(steps=steps, lr=0.2, transductive=transductive)
        batched = adapt_and_predict(model, tasks, chunk_size=3, **kwargs)
        looped = adapt_and_predict(model, tasks, vectorize=False, **kwargs)
        assert len(batched) == 7 and batched[0].shape == (12, 3)
        for task, fast, slow in zip(tasks, batched, looped):
            reference = adapt(model, task.support_x, task.support_y, **kwargs)(task.query_x)
            torch.testing.assert_close(slow, reference.detach(), rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(fast, reference.detach(), rtol=1e-4, atol=1e-5)
    _assert_state_close(_weights(model), before)


def test_a_model_vmap_cannot_run_gets_a_clear_error_and_the_loop_works():
    class Scalar(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 3)

        def forward(self, x):
            return self.linear(x) * float(x.abs().max())  # .item() inside: not vectorisable

    kwargs = dict(meta_iterations=1, meta_batch_size=2, inner_steps=1, inner_lr=0.1, meta_lr=1.0)
    with pytest.raises(RuntimeError, match="vectorize=False"):
        reptile(Scalar(), _tasks(2), **kwargs)
    reptile(Scalar(), _tasks(2), vectorize=False, **kwargs)


def test_bad_input_gives_clear_errors():
    model, (x, y) = _model(), _tasks(1)[0]
    kwargs = dict(meta_iterations=2, meta_batch_size=2, inner_steps=1, inner_lr=0.1, meta_lr=1.0)
    with pytest.raises(ValueError, match="tasks ran out at meta-iteration 2"):
        reptile(model, _tasks(3), **kwargs)
    with pytest.raises(ValueError, match=r"meta_lr must be a number > 0\.0"):
        reptile(model, _tasks(4), **{**kwargs, "meta_lr": 0.0})
    with pytest.raises(ValueError, match="inner_steps must be an integer >= 1"):
        reptile(model, _tasks(4), **{**kwargs, "inner_steps": 0})
    with pytest.raises(TypeError, match="a task must be"):
        reptile(model, [x] * 4, **kwargs)
    with pytest.raises(TypeError, match=r"model must be an nn\.Module"):
        reptile(lambda t: t, _tasks(4), **kwargs)
    with pytest.raises(ValueError, match="same number"):
        adapt(model, x, y[:-1], steps=1, lr=0.1)
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        adapt(model, x, y, steps=-1, lr=0.1)
