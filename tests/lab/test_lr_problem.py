"""The learning-rate range test's problem: reproducible, and the model left at its start."""

import math

import pytest
import torch

from mltricks.lab.lr_problem import batch_stream, lr_range_problem, trained_val_losses


def test_lr_range_problem_is_reproducible_and_keeps_its_initial_weights():
    kwargs = dict(
        width=2, batch_size=64, val_fraction=0.25, random_state=3, device=torch.device("cpu")
    )
    problem = lr_range_problem(**kwargs)
    again = lr_range_problem(**kwargs)
    assert len(problem.train_labels) + len(problem.val.dataset) == 1437
    assert len(problem.val.dataset) == int(0.25 * 1437)
    for key, value in problem.model.state_dict().items():
        assert torch.equal(value, problem.initial[key])
        assert torch.equal(value, again.initial[key])
    batches = batch_stream(problem)
    first_epoch = len(problem.train)
    seen = [next(batches) for _ in range(first_epoch + 1)]  # runs on into a second epoch
    assert len(seen) == first_epoch + 1 and all(len(b[0]) == 64 for b in seen)


def test_trained_val_losses_are_reproducible_and_leave_the_initial_weights():
    problem = lr_range_problem(
        width=4, batch_size=64, val_fraction=0.25, random_state=0, device=torch.device("cpu")
    )
    kwargs = dict(
        lrs=(1e-5, 3e-3), optimizer="adam", epochs=1, repeats=1, batch_size=64, random_state=0
    )
    losses = trained_val_losses(problem, **kwargs)
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert losses[1] < losses[0]  # one epoch at 1e-5 barely moves the weights
    for key, value in problem.model.state_dict().items():
        assert torch.equal(value, problem.initial[key])
    assert trained_val_losses(problem, **kwargs) == losses


def test_trained_val_losses_rejects_an_unknown_optimizer():
    problem = lr_range_problem(
        width=2, batch_size=64, val_fraction=0.25, random_state=0, device=torch.device("cpu")
    )
    with pytest.raises(ValueError, match="optimizer"):
        trained_val_losses(
            problem,
            lrs=(1e-3,),
            optimizer="lion",
            epochs=1,
            repeats=1,
            batch_size=64,
            random_state=0,
        )


def test_seed_is_a_deprecated_name_of_random_state():
    kwargs = dict(width=2, batch_size=64, val_fraction=0.25, device=torch.device("cpu"))
    with pytest.warns(DeprecationWarning, match="'seed' is deprecated; use 'random_state'"):
        old = lr_range_problem(seed=3, **kwargs)
    new = lr_range_problem(random_state=3, **kwargs)
    for key, value in new.initial.items():
        assert torch.equal(value, old.initial[key])
