"""Few-shot adaptation: a few full-batch SGD steps on a task's support set, on a copy.

``adapt`` adapts one copy of the model to one support set. ``adapt_and_predict`` gives, for many
tasks, the query outputs of the adapted copies: the same numbers as ``adapt(...)(query_x)`` task
by task, computed for whole chunks of tasks at once with ``torch.func.vmap``.

BatchNorm: adaptation trains in training mode, so BatchNorm normalises with the support batch's
statistics. Non-transductive (default): the running statistics of the adapted copy are set to
exactly those statistics (mean and biased variance, which BatchNorm normalises with), and the copy
is put in eval mode, so a query is normalised as the support set was and classified on its own.
Transductive: BatchNorm layers stay in training mode and a batch of queries is normalised with its
own statistics (the setting of the transductive numbers of MAML and Reptile; queries then
influence each other's predictions).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mltricks._utils.checks import check_module, check_number
from mltricks._utils.state import model_device
from mltricks.meta import _batched

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

NON_TRANSDUCTIVE = (
    "non-transductive: the adapted copy is in eval mode and BatchNorm normalises with the support "
    "set's statistics, so each query is classified on its own"
)
TRANSDUCTIVE = (
    "transductive: BatchNorm layers of the adapted copy stay in training mode, so a batch of "
    "queries is normalised with its own statistics"
)


def adapt(
    model: nn.Module,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    *,
    steps: int,
    lr: float,
    loss_fn: LossFn = F.cross_entropy,
    transductive: bool = False,
) -> nn.Module:
    """A copy of ``model`` after ``steps`` full-batch SGD steps on a support set.

    Args:
        model: any ``nn.Module`` (left unchanged).
        support_x: ``(S, ...)`` support inputs.
        support_y: ``(S,)`` support targets (task labels for cross-entropy).
        steps: SGD steps (0 returns an unchanged copy).
        lr: SGD learning rate.
        loss_fn: ``loss_fn(model(inputs), targets)``; cross-entropy by default.
        transductive: see the module docstring (``NON_TRANSDUCTIVE`` by default).

    Returns:
        The adapted copy on the model's device: in eval mode with BatchNorm running statistics
        from the support set, or with BatchNorm layers in training mode when ``transductive``.

    Example:
        >>> from mltricks.data import FewShotTasks, load_digits_images
        >>> from mltricks.meta import adapt
        >>> from mltricks.models import SmallCNN
        >>> tasks = FewShotTasks(*load_digits_images(), ways=5, shots=1, queries=15, random_state=0)
        >>> task = tasks.sample(1)[0]
        >>> model = SmallCNN(1, 5, width=8)
        >>> learner = adapt(model, task.support_x, task.support_y, steps=10, lr=0.1)
        >>> accuracy = (learner(task.query_x).argmax(1) == task.query_y).float().mean()
        >>> learner is model  # an adapted copy: the model itself is unchanged
        False
    """
    _check(model, steps, lr)
    if len(support_x) != len(support_y) or len(support_y) == 0:
        raise ValueError(
            f"support_x and support_y must hold the same number (> 0) of samples; got "
            f"{len(support_x)} and {len(support_y)}"
        )
    learner = copy.deepcopy(model)
    params = [p for p in learner.parameters() if p.requires_grad]
    if steps > 0 and not params:
        raise ValueError("model has no parameter with requires_grad=True: nothing to adapt")
    device = model_device(learner)
    support_x, support_y = support_x.to(device), support_y.to(device)
    learner.train()
    if steps > 0:
        sgd(learner, params, support_x, support_y, steps, lr, loss_fn)
    if not transductive:
        _set_support_statistics(learner, lambda: learner(support_x))
    _final_modes(learner, transductive)
    return learner


def adapt_and_predict(
    model: nn.Module,
    tasks: Sequence[Any],
    *,
    steps: int,
    lr: float,
    loss_fn: LossFn = F.cross_entropy,
    transductive: bool = False,
    vectorize: bool = True,
    chunk_size: int = 100,
) -> list[torch.Tensor]:
    """Query outputs of each task after adapting a copy of ``model`` on its support set.

    Equals ``adapt(model, t.support_x, t.support_y, ...)(t.query_x)`` for every task ``t`` (up to
    float rounding; dropout masks differ), computed ``chunk_size`` tasks at a time with
    ``torch.func.vmap`` when ``vectorize`` and all tasks have the same shapes.

    Args:
        model: any ``nn.Module`` (left unchanged).
        tasks: tasks with ``support_x``, ``support_y`` and ``query_x`` (``mltricks.data.Task``).
        steps: as in ``adapt``.
        lr: as in ``adapt``.
        loss_fn: as in ``adapt``.
        transductive: as in ``adapt``.
        vectorize: adapt a chunk of tasks in one batched call (False: task by task).
        chunk_size: tasks per batched call (memory grows with it).

    Returns:
        one ``(Q, ...)`` output tensor per task, on the CPU.
    """
    _check(model, steps, lr)
    check_number("chunk_size", chunk_size, low=1, integer=True)
    shapes = {(t.support_x.shape, t.support_y.shape, t.query_x.shape) for t in tasks}
    if not vectorize or len(shapes) > 1:
        outputs = []
        for task in tasks:
            learner = adapt(
                model, task.support_x, task.support_y, steps=steps, lr=lr, loss_fn=loss_fn,
                transductive=transductive,
            )  # fmt: skip
            with torch.no_grad():
                outputs.append(learner(task.query_x.to(model_device(learner))).cpu())
        return outputs
    learner = copy.deepcopy(model)
    outputs = []
    for start in range(0, len(tasks), chunk_size):
        chunk = tasks[start : start + chunk_size]
        outputs += list(_predict_chunk(learner, chunk, steps, lr, loss_fn, transductive))
    return outputs


def _predict_chunk(
    learner: nn.Module,
    chunk: Sequence[Any],
    steps: int,
    lr: float,
    loss_fn: LossFn,
    transductive: bool,
) -> torch.Tensor:
    """``adapt`` then predict for a chunk of same-shaped tasks at once: ``(T, Q, ...)``."""
    device = model_device(learner)
    support_x = torch.stack([t.support_x for t in chunk]).to(device)
    support_y = torch.stack([t.support_y for t in chunk]).to(device)
    query_x = torch.stack([t.query_x for t in chunk]).to(device)
    trainable, fixed = _batched.split_weights(learner)
    buffers = _batched.per_task_buffers(learner, len(chunk))  # fresh per-task copies
    learner.train()
    if steps > 0:
        trainable, _ = _batched.sgd_on_tasks(
            learner, support_x, support_y, steps=steps, lr=lr, loss_fn=loss_fn,
            trainable=trainable, fixed=fixed, buffers=buffers,
        )  # fmt: skip
    else:
        trainable = {k: v.expand(len(chunk), *v.shape) for k, v in trainable.items()}
    forward = functools.partial(_batched.forward_tasks, learner, trainable, fixed, buffers)
    if not transductive:
        _set_support_statistics(learner, functools.partial(forward, support_x), buffers)
    _final_modes(learner, transductive)
    return forward(query_x).cpu()


def sgd(
    model: nn.Module,
    params: list[nn.Parameter],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    steps: int,
    lr: float,
    loss_fn: LossFn,
) -> list[float]:
    """Plain full-batch SGD in place, in the model's current modes; gradients come from
    ``autograd.grad`` so ``.grad`` stays untouched. Returns the loss before each step."""
    losses = []
    for _ in range(steps):
        loss = loss_fn(model(inputs), targets)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        with torch.no_grad():
            for param, grad in zip(params, grads):
                if grad is not None:
                    param.sub_(lr * grad)
        losses.append(float(loss.detach()))
    return losses


def _set_support_statistics(
    model: nn.Module, run: Callable[[], Any], buffers: dict[str, torch.Tensor] | None = None
) -> None:
    """One training-mode pass of the support set (``run``) with ``momentum=1`` sets BatchNorm
    running statistics to the support set's mean and biased variance. ``buffers``: the per-task
    buffers the pass updates instead of the model's own (vectorised path)."""
    norms = {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    }
    if not norms:
        return
    counts: dict[str, int] = {}

    def counter(name: str) -> Callable[..., None]:
        def count(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            counts[name] = inputs[0].numel() // inputs[0].shape[1]  # values per channel

        return count

    momenta = {name: norm.momentum for name, norm in norms.items()}
    hooks = [norm.register_forward_pre_hook(counter(name)) for name, norm in norms.items()]
    try:
        for norm in norms.values():
            norm.momentum = 1.0  # the running statistics become this batch's
        model.train()
        with torch.no_grad():
            run()
            for name, norm in norms.items():
                # BatchNorm stores the unbiased variance but normalises with the biased one
                var = norm.running_var if buffers is None else buffers[f"{name}.running_var"]
                n = counts.get(name, 1)
                if var is not None and n > 1:
                    var.mul_((n - 1) / n)
    finally:
        for hook in hooks:
            hook.remove()
        for name, norm in norms.items():
            norm.momentum = momenta[name]


def _final_modes(learner: nn.Module, transductive: bool) -> None:
    learner.eval()
    if transductive:
        for norm in _batched.batch_norms(learner):
            norm.train()


def _check(model: Any, steps: Any, lr: Any) -> None:
    check_module("model", model)
    check_number("steps", steps, low=0, integer=True)
    check_number("lr", lr, low=0.0)
