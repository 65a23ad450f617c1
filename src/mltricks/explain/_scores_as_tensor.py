"""Deprecated in 0.2.0, removed in 0.3.0: a curve object that still acts as its ``scores`` tensor.

``masking_curve`` returned a ``(B, steps + 1)`` tensor; it now returns a ``MaskingCurve``, as
``deletion_curve`` returns a ``DeletionCurve``. Code written for the tensor keeps working until
0.3.0: indexing, methods (``.mean``, ``.tolist``), operators and ``torch`` functions reach
``scores``, each with a ``DeprecationWarning``. Delete this module with the deprecation.
"""

from __future__ import annotations

from typing import Any

import torch

from mltricks._utils.deprecation import deprecation_warning


class ScoresAsTensor:
    """Until 0.3.0, a ``MaskingCurve`` also behaves as its ``scores`` tensor (what
    ``masking_curve`` returned before), with a ``DeprecationWarning`` on every such use."""

    scores: torch.Tensor

    def _old_tensor(self) -> torch.Tensor:
        """``scores``, with the warning pointed at the line that called the method calling
        this one."""
        deprecation_warning(
            "masking_curve() returns a MaskingCurve: use its .scores (B, steps + 1) where the "
            "result was used as a tensor.",
            stacklevel=4,
        )
        return self.scores

    def __getattr__(self, name: str) -> Any:  # only reached for names the curve lacks
        if name.startswith("_") or name == "scores":
            raise AttributeError(name)
        return getattr(self._old_tensor(), name)

    def __getitem__(self, index: Any) -> torch.Tensor:
        return self._old_tensor()[index]

    def __len__(self) -> int:
        return len(self._old_tensor())

    def __iter__(self) -> Any:
        return iter(self._old_tensor())

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        deprecation_warning(
            f"masking_curve() returns a MaskingCurve: pass its .scores to {func.__name__}().",
        )

        def unwrap(value: Any) -> Any:
            if isinstance(value, ScoresAsTensor):
                return value.scores
            if isinstance(value, list | tuple):
                return type(value)(unwrap(v) for v in value)
            return value

        return func(*unwrap(args), **{k: unwrap(v) for k, v in (kwargs or {}).items()})


def _forward(name: str) -> Any:
    def method(self: ScoresAsTensor, *args: Any) -> Any:
        return getattr(self._old_tensor(), name)(*args)

    method.__name__ = name
    return method


_OPERATORS = ("add", "radd", "sub", "rsub", "mul", "rmul", "truediv", "rtruediv", "neg")
_COMPARISONS = ("eq", "ne", "lt", "le", "gt", "ge")
for _op in (*_OPERATORS, *_COMPARISONS):
    setattr(ScoresAsTensor, f"__{_op}__", _forward(f"__{_op}__"))
ScoresAsTensor.__hash__ = None  # type: ignore[assignment]
