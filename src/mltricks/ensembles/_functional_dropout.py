"""Detect dropout called through ``torch.nn.functional`` outside a dropout module.

Such a call follows its own module's ``training`` flag, which ``MCDropout`` cannot switch on
without switching BatchNorm too; a forward pass under ``no_functional_dropout`` names the
modules that make such calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.dropout import _DropoutNd
from torch.overrides import TorchFunctionMode

# functional dropouts a forward may call directly (nn.Dropout modules call them too)
_FUNCTIONAL_DROPOUT = {
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    F.dropout3d,
    F.alpha_dropout,
    F.feature_alpha_dropout,
    torch.dropout,
    torch.alpha_dropout,
    torch.feature_dropout,
    torch.feature_alpha_dropout,
}


class _DropoutCalls(TorchFunctionMode):
    """Records functional dropout called outside a dropout module."""

    def __init__(
        self, stack: list[tuple[str, nn.Module]], allowed: tuple[type[nn.Module], ...]
    ) -> None:
        super().__init__()
        self.stack = stack
        self.allowed = (_DropoutNd, *allowed)
        self.offenders: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if (
            func in _FUNCTIONAL_DROPOUT
            and self.stack
            and not isinstance(self.stack[-1][1], self.allowed)
        ):
            name, module = self.stack[-1]
            where = f"{name or 'the model'} ({type(module).__name__})"
            if where not in self.offenders:
                self.offenders.append(where)
        return func(*args, **(kwargs or {}))


@contextmanager
def no_functional_dropout(
    model: nn.Module, allowed: tuple[type[nn.Module], ...] = ()
) -> Iterator[None]:
    """Run a forward pass and raise if a module called functional dropout itself (dropout
    modules and instances of ``allowed``, whose flag the caller switches, may)."""
    stack: list[tuple[str, nn.Module]] = []
    handles = []

    def leave(module: nn.Module, args: Any, output: Any) -> None:
        stack.pop()

    for name, module in model.named_modules():
        handles.append(
            module.register_forward_pre_hook(lambda m, a, name=name: stack.append((name, m)))
        )
        handles.append(module.register_forward_hook(leave, always_call=True))
    mode = _DropoutCalls(stack, allowed)
    try:
        with mode:
            yield
    finally:
        for handle in handles:
            handle.remove()
    if mode.offenders:
        raise ValueError(
            f"{', '.join(mode.offenders)} calls torch.nn.functional dropout in its forward; "
            "MCDropout can only keep dropout modules stochastic (the functional call follows "
            "that module's eval mode): replace it by an nn.Dropout module"
        )
