"""Plumbing: the inner SGD loop for many tasks at once with ``torch.func.vmap``.

A model's weights are turned into a dict of tensors; ``functional_call`` runs the model with
weights that carry a leading task dimension, so ``T`` tasks train in one batched call per step
instead of ``T`` calls. Buffers (BatchNorm running statistics) are copied per task and updated
in place exactly as the model would update its own, so the results equal the task-by-task loop.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

Tensors = dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def split_weights(model: nn.Module) -> tuple[Tensors, Tensors]:
    """``(trainable, fixed)``: parameters with ``requires_grad``, and the other parameters."""
    trainable: Tensors = {}
    fixed: Tensors = {}
    for name, param in model.named_parameters():
        (trainable if param.requires_grad else fixed)[name] = param.detach()
    return trainable, fixed


def per_task_buffers(model: nn.Module, num_tasks: int) -> Tensors:
    """A copy of every buffer for each task: ``(num_tasks, ...)``."""
    return {
        name: buffer.detach().unsqueeze(0).repeat(num_tasks, *([1] * buffer.ndim))
        for name, buffer in model.named_buffers()
    }


def _vmap(function: Callable, in_dims: tuple) -> Callable:
    mapped = vmap(function, in_dims=in_dims, randomness="different")

    def call(*args):
        try:
            return mapped(*args)
        except (RuntimeError, NotImplementedError) as error:
            # torch.func raises these very types; a subclass (out of memory, the model's own
            # exception) is not about vectorising and reaches the caller unchanged
            if type(error) not in (RuntimeError, NotImplementedError):
                raise
            raise RuntimeError(
                f"the model could not run vectorised over tasks with torch.func.vmap ({error}); "
                "pass vectorize=False to train task by task"
            ) from error

    return call


def sgd_on_tasks(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    steps: int,
    lr: float,
    loss_fn: LossFn,
    trainable: Tensors,
    fixed: Tensors,
    buffers: Tensors,
) -> tuple[Tensors, torch.Tensor]:
    """Full-batch SGD from the same ``trainable`` weights on each of ``T`` tasks at once.

    Args:
        model: run in its current modes (training mode for the inner loop).
        inputs: ``(T, S, ...)``; targets ``(T, S, ...)``.
        trainable: weights to train (shared start); ``fixed``: frozen parameters.
        buffers: per-task buffers ``(T, ...)``, updated in place as the model would.

    Returns:
        the trained weights ``(T, ...)`` and the loss before each step ``(steps, T)``.
    """

    def loss(weights: Tensors, task_buffers: Tensors, x: torch.Tensor, y: torch.Tensor):
        output = functional_call(model, {**weights, **fixed, **task_buffers}, (x,))
        value = loss_fn(output, y)
        return value, value.detach()

    def train(weights: Tensors, task_buffers: Tensors, x: torch.Tensor, y: torch.Tensor):
        losses = []
        for _ in range(steps):
            grads, value = grad(loss, has_aux=True)(weights, task_buffers, x, y)
            weights = {k: w - lr * grads[k] for k, w in weights.items()}
            losses.append(value)
        return weights, torch.stack(losses)

    trained, losses = _vmap(train, (None, 0, 0, 0))(trainable, buffers, inputs, targets)
    return trained, losses.T


def forward_tasks(
    model: nn.Module, weights: Tensors, fixed: Tensors, buffers: Tensors, inputs: torch.Tensor
) -> torch.Tensor:
    """``model`` with per-task weights and buffers on per-task inputs ``(T, N, ...)``."""

    def forward(task_weights: Tensors, task_buffers: Tensors, x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, {**task_weights, **fixed, **task_buffers}, (x,))

    with torch.no_grad():
        return _vmap(forward, (0, 0, 0))(weights, buffers, inputs)
