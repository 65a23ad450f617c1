"""Temporary changes to a model that are undone on exit, also when an error is raised.

Explainers and attacks hook into a model or switch it to eval mode for the length of one call.
These context managers guarantee that the model comes back with no hook left behind and every
module in the train/eval mode it had, whatever happens inside the block. They are cheaper than
``mltricks._utils.state.preserved`` (which clones every weight) and are enough for techniques that
never write to weights or parameter gradients.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from mltricks._utils.hooks import eval_mode, forward_hooks
    >>> model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    >>> with eval_mode(model), forward_hooks([model[1]], lambda m, i, o: None):
    ...     _ = model(torch.zeros(1, 2))
    >>> model.training, len(model[1]._forward_hooks)
    (True, 0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["eval_mode", "forward_hooks", "temporary_hooks"]


@contextmanager
def temporary_hooks() -> Iterator[list[RemovableHandle]]:
    """Yield a list for hook handles; every handle in it is removed on exit.

    Register hooks inside the block and append their handles: a hook registered before an error
    is removed too.
    """
    handles: list[RemovableHandle] = []
    try:
        yield handles
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def forward_hooks(
    modules: Iterable[nn.Module],
    hook: Callable[[nn.Module, Any, Any], Any],
    *,
    pre_hook: Callable[[nn.Module, Any], Any] | None = None,
) -> Iterator[list[RemovableHandle]]:
    """Register ``hook`` (and ``pre_hook``) as forward hooks of ``modules`` for one block."""
    with temporary_hooks() as handles:
        for module in modules:
            if pre_hook is not None:
                handles.append(module.register_forward_pre_hook(pre_hook))
            handles.append(module.register_forward_hook(hook))
        yield handles


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for one block; every module gets its own mode back on exit.

    Modes are restored module by module, so a model that was partly in train mode (a frozen
    encoder with BatchNorm in eval mode inside a model in train mode) comes back exactly so.
    """
    modes = [(module, module.training) for module in model.modules()]
    if any(training for _, training in modes):
        model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            if module.training != training:  # setting is slow (nn.Module.__setattr__)
                module.training = training
