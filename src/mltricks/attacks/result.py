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
