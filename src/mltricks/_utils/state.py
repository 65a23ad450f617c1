"""Snapshots of a model and of the global random state, restored exactly.

A technique that trains a model it must give back unchanged (``lr_range_test`` trains every
candidate from the same start) snapshots it: weights and buffers, train/eval mode of every module,
``requires_grad`` and ``.grad`` of every parameter. ``preserved`` restores all of that, and the
global random state, on exit, also when an error is raised. ``get_rng_state`` / ``set_rng_state``
alone serve a technique that draws from the global generators and must leave them as they were
(``MCDropout``, ``lr_range_test``); ``model_device`` tells where a model lives (``reptile``,
``adapt``, ``mltricks.nlp.fill_mask``). Techniques that only hook into a model or switch its mode
(attacks, explainers) use the lighter ``mltricks._utils.hooks`` instead.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass
class ModelState:
    """Everything ``restore_model`` puts back: tensors are cloned, not referenced."""

    tensors: dict[str, torch.Tensor]
    training: dict[str, bool]
    requires_grad: dict[str, bool]
    grads: dict[str, torch.Tensor | None]


def snapshot_model(model: nn.Module) -> ModelState:
    """Copy the weights, buffers, modes, ``requires_grad`` and gradients of ``model``."""
    return ModelState(
        tensors={k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
        training={name: m.training for name, m in model.named_modules()},
        requires_grad={name: p.requires_grad for name, p in model.named_parameters()},
        grads={
            name: None if p.grad is None else p.grad.detach().clone()
            for name, p in model.named_parameters()
        },
    )


def restore_model(model: nn.Module, state: ModelState, *, weights_only: bool = False) -> None:
    """Put ``state`` back into ``model`` in place (parameters keep their identity)."""
    with torch.no_grad():
        for name, tensor in model.state_dict(keep_vars=True).items():
            tensor.data.copy_(state.tensors[name])
    if weights_only:
        return
    for name, module in model.named_modules():
        module.training = state.training[name]
    for name, param in model.named_parameters():
        param.requires_grad_(state.requires_grad[name])
        saved = state.grads[name]
        param.grad = None if saved is None else saved.clone()


def get_rng_state() -> dict[str, Any]:
    """The state of Python's, NumPy's and torch's global generators (CUDA included)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a state from ``get_rng_state``."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def preserved(model: nn.Module | None = None, *, rng: bool = True) -> Iterator[ModelState | None]:
    """Run a block and then restore ``model`` (and the global RNG) as they were before it."""
    model_state = snapshot_model(model) if model is not None else None
    rng_state = get_rng_state() if rng else None
    try:
        yield model_state
    finally:
        if model is not None and model_state is not None:
            restore_model(model, model_state)
        if rng_state is not None:
            set_rng_state(rng_state)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without any)."""
    for tensor in [*model.parameters(), *model.buffers()]:
        return tensor.device
    return torch.device("cpu")
