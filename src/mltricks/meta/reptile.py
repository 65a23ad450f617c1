"""Reptile (Nichol, Achiam and Schulman 2018, https://arxiv.org/abs/1803.02999).

Reptile looks for an initialisation from which a few SGD steps solve a new task. Each
meta-iteration draws ``meta_batch_size`` fresh tasks, trains a copy of the weights ``w`` on each
for ``inner_steps`` full-batch SGD steps (giving ``w_task``), and moves the weights towards them:

    w <- w + meta_lr * mean over the meta-batch of (w_task - w)

With one task, one inner step and ``meta_lr = 1`` this is exactly one SGD step on that task. The
inner loop runs in training mode: BatchNorm normalises with each task's batch, and its running
statistics (all floating-point buffers) move towards each task's values like the weights. The
tasks of a meta-batch train at once with ``torch.func.vmap`` (``vectorize``), with the same
results as one after the other. ``mltricks.meta.adapt`` is the learner used at meta-test time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mltricks._utils.checks import check_module, check_number
from mltricks._utils.state import model_device
from mltricks.meta import _batched
from mltricks.meta.adapt import sgd

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, nn.Module], "dict[str, float] | None"]


@dataclass
class ReptileResult:
    """What ``reptile`` recorded, one entry per meta-iteration.

    Attributes:
        meta_lrs: ``(meta_iterations,)`` outer step size used at each meta-iteration.
        first_inner_losses: ``(meta_iterations,)`` mean over the meta-batch of the task loss
            before the first inner step (the loss of the current initialisation).
        last_inner_losses: ``(meta_iterations,)`` mean task loss before the last inner step.
        logs: the dicts returned by ``callback``, each with its ``"iteration"`` (from 1).
        batch_norm: how BatchNorm behaved during meta-training.
    """

    meta_lrs: np.ndarray
    first_inner_losses: np.ndarray
    last_inner_losses: np.ndarray
    logs: list[dict[str, float]] = field(default_factory=list)
    batch_norm: str = (
        "training mode in the inner loop: BatchNorm normalises with each task's support batch; "
        "running statistics move towards each task's values like the weights"
    )


def reptile(
    model: nn.Module,
    tasks: Iterable[Any],
    *,
    meta_iterations: int,
    meta_batch_size: int,
    inner_steps: int,
    inner_lr: float,
    meta_lr: float,
    meta_lr_final: float | None = None,
    loss_fn: LossFn = F.cross_entropy,
    callback: Callback | None = None,
    vectorize: bool = True,
) -> ReptileResult:
    """Meta-train ``model`` in place with Reptile.

    Args:
        model: any ``nn.Module``; its trainable parameters and buffers are meta-learned. Modes,
            ``requires_grad`` and ``.grad`` are left as found.
        tasks: an iterable of tasks, read in order, one task per inner loop (a ``FewShotTasks``
            gives a fresh task every time). A task is a ``Task`` (its ``support_x`` and
            ``support_y`` are trained on) or an ``(inputs, targets)`` pair.
        meta_iterations: outer updates.
        meta_batch_size: tasks averaged per outer update.
        inner_steps: full-batch SGD steps per task.
        inner_lr: SGD learning rate of the inner loop.
        meta_lr: outer step size ``epsilon`` (1 moves all the way to the tasks' mean weights).
        meta_lr_final: when given, the outer step size goes linearly from ``meta_lr`` at the first
            meta-iteration to ``meta_lr_final`` at the last.
        loss_fn: ``loss_fn(model(inputs), targets)``; cross-entropy by default.
        callback: ``callback(iteration, model)`` after each outer update (``iteration`` from
            1); a returned dict is stored in ``logs``. Use ``adapt`` inside it, which copies.
        vectorize: train the tasks of a meta-batch at once with ``torch.func.vmap`` when there
            are several of the same shapes (False: one after the other; same results, dropout
            aside).

    Returns:
        ``ReptileResult`` with the outer step sizes and inner losses per meta-iteration.

    Example:
        >>> from mltricks.data import FewShotTasks, load_digits_images
        >>> from mltricks.meta import reptile
        >>> from mltricks.models import SmallCNN
        >>> images, labels = load_digits_images(split="train")
        >>> tasks = FewShotTasks(images, labels, ways=5, shots=10, queries=0, random_state=0)
        >>> model = SmallCNN(1, 5, width=8)
        >>> result = reptile(model, tasks, meta_iterations=10, meta_batch_size=5,
        ...                  inner_steps=5, inner_lr=0.1, meta_lr=1.0, meta_lr_final=0.0)
        >>> len(result.meta_lrs)  # one outer step per meta-iteration (1000 in the lab)
        10
    """
    check_module("model", model)
    check_number("meta_iterations", meta_iterations, low=1, integer=True)
    check_number("meta_batch_size", meta_batch_size, low=1, integer=True)
    check_number("inner_steps", inner_steps, low=1, integer=True)
    check_number("inner_lr", inner_lr, low=0.0, low_inclusive=False)
    check_number("meta_lr", meta_lr, low=0.0, low_inclusive=False)
    if meta_lr_final is not None:
        check_number("meta_lr_final", meta_lr_final, low=0.0)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("model has no parameter with requires_grad=True: nothing to meta-learn")
    # the state each task starts from: trainable weights and all buffers; Reptile interpolates
    # the floating-point ones, integer buffers (BatchNorm's step counter) follow the last task
    state = {**params, **dict(model.named_buffers())}
    final = meta_lr if meta_lr_final is None else meta_lr_final
    meta_lrs = np.linspace(meta_lr, final, meta_iterations)
    result = ReptileResult(meta_lrs, np.zeros(meta_iterations), np.zeros(meta_iterations))
    modes = {name: m.training for name, m in model.named_modules()}
    stream = iter(tasks)
    device = model_device(model)
    try:
        model.train()
        for iteration in range(meta_iterations):
            start = {name: t.detach().clone() for name, t in state.items()}
            batch = [_next_task(stream, iteration, device) for _ in range(meta_batch_size)]
            ends, losses = _inner_loops(
                model, batch, state, start, inner_steps, inner_lr, loss_fn, vectorize
            )
            result.first_inner_losses[iteration] = float(losses[0].mean())
            result.last_inner_losses[iteration] = float(losses[-1].mean())
            with torch.no_grad():
                for name, tensor in state.items():
                    if tensor.is_floating_point():
                        # towards the tasks: w + eps * mean(w_task - w)
                        mean_move = (ends[name] - start[name]).mean(0)
                        tensor.copy_(start[name] + float(meta_lrs[iteration]) * mean_move)
                    else:
                        tensor.copy_(ends[name][-1])
            if callback is not None:
                logged = callback(iteration + 1, model)
                model.train()
                if logged:
                    result.logs.append({"iteration": iteration + 1, **logged})
    finally:
        for name, module in model.named_modules():
            module.training = modes[name]
    return result


def _inner_loops(
    model: nn.Module,
    batch: list[tuple[torch.Tensor, torch.Tensor]],
    state: dict[str, torch.Tensor],
    start: dict[str, torch.Tensor],
    steps: int,
    lr: float,
    loss_fn: LossFn,
    vectorize: bool,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Train from ``start`` on every task of ``batch``. Returns each task's end state
    ``{name: (T, ...)}`` and the losses before each step ``(steps, T)``."""
    same_shapes = len({(x.shape, y.shape) for x, y in batch}) == 1
    if vectorize and same_shapes and len(batch) > 1:
        inputs = torch.stack([x for x, _ in batch])
        targets = torch.stack([y for _, y in batch])
        trainable, fixed = _batched.split_weights(model)
        buffers = _batched.per_task_buffers(model, len(batch))
        trained, losses = _batched.sgd_on_tasks(
            model, inputs, targets, steps=steps, lr=lr, loss_fn=loss_fn,
            trainable=trainable, fixed=fixed, buffers=buffers,
        )  # fmt: skip
        return {**trained, **buffers}, losses
    params = [p for p in model.parameters() if p.requires_grad]
    ends: dict[str, list[torch.Tensor]] = {name: [] for name in state}
    all_losses = []
    for inputs, targets in batch:
        with torch.no_grad():
            for name, tensor in state.items():
                tensor.copy_(start[name])
        all_losses.append(sgd(model, params, inputs, targets, steps, lr, loss_fn))
        for name, tensor in state.items():
            ends[name].append(tensor.detach().clone())
    stacked = {name: torch.stack(values) for name, values in ends.items()}
    return stacked, torch.tensor(all_losses).T


def _next_task(
    stream: Iterator[Any], iteration: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        task = next(stream)
    except StopIteration:
        raise ValueError(
            f"tasks ran out at meta-iteration {iteration + 1}: give an endless source such as "
            "FewShotTasks, or at least meta_iterations * meta_batch_size tasks"
        ) from None
    if hasattr(task, "support_x") and hasattr(task, "support_y"):
        inputs, targets = task.support_x, task.support_y
    elif isinstance(task, tuple | list) and len(task) == 2:
        inputs, targets = task
    else:
        raise TypeError(
            f"a task must be a Task (support_x, support_y, ...) or an (inputs, targets) pair; "
            f"got {type(task).__name__}"
        )
    return inputs.to(device), targets.to(device)
