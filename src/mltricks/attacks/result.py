"""What an attack reports besides the adversarial batch, when asked (``return_result=True``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class AttackResult:
    """The adversarial batch and, per sample, whether the attack reached its goal.

    Attributes:
        adversarial: ``(B, ...)`` the adversarial examples (what the attack returns without
            ``return_result``).
        success: ``(B,)`` bool: the model (in eval mode) predicts the target class (targeted
            attacks) or no longer predicts the true class (untargeted ones).
    """

    adversarial: torch.Tensor
    success: torch.Tensor

    @property
    def success_rate(self) -> float:
        """Share of samples where the attack succeeded."""
        return float(self.success.float().mean())


@dataclass
class CarliniWagnerResult(AttackResult):
    """What ``carlini_wagner`` found (``return_result=True``).

    Attributes:
        adversarial: ``(B, ...)`` the smallest-L2 successful example per sample; the unchanged
            input where the attack failed.
        success: ``(B,)`` bool, True where some iterate reached the target by ``kappa``.
        l2: ``(B,)`` Euclidean distance ``||adversarial - x||_2`` (0 for failures).
        margin: ``(B,)`` ``max_{j != t} z_j - z_t`` of ``adversarial`` in the attack's space
            (negative where the target wins).
        c: ``(B,)`` the ``c`` that produced ``adversarial`` (the last ``c`` tried for failures).
    """

    l2: torch.Tensor
    margin: torch.Tensor
    c: torch.Tensor
