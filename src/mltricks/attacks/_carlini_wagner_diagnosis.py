"""Why ``carlini_wagner`` reached the target for few samples: the likely reasons, named."""

from __future__ import annotations

import torch
from torch import nn

from mltricks._utils.classifier import class_scores, looks_like_probabilities
from mltricks.attacks.result import CarliniWagnerResult


def diagnose(
    model: nn.Module,
    x0: torch.Tensor,
    clean_scores: torch.Tensor,
    result: CarliniWagnerResult,
    c: float,
    binary_search_steps: int,
    space: str,
    found_training: bool = False,
) -> str:
    """The likely reasons for a low success rate, most likely first.

    ``found_training``: the model came in train mode (the attack ran it in eval mode).
    """
    reasons = []
    if looks_like_probabilities(clean_scores):
        if space == "logits":
            reasons.append(
                "the model seems to return probabilities (rows sum to 1) where logits are "
                "expected: softmax saturates the margin; drop the final softmax or use "
                "space='probs'"
            )
        else:
            reasons.append(
                "the model seems to return probabilities and space='probs' applies softmax "
                "again: return logits from the model"
            )
    with torch.no_grad():
        again = class_scores(model, x0)
    if not torch.allclose(again, clean_scores, rtol=1e-4, atol=1e-5):
        reasons.append(
            "the model's outputs change between two calls on the same input even in eval "
            "mode (dropout or batch statistics still active, as in train mode): the attack "
            "aims at a moving target"
        )
    if found_training and any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()
    ):
        reasons.append(
            "the model was passed in train mode and was attacked in eval mode, where BatchNorm "
            "uses its running statistics: if those are stale (a model never evaluated), its "
            "eval-mode predictions differ from the train-mode ones; check model.eval() accuracy"
        )
    if binary_search_steps == 0:
        reasons.append(
            f"c={c:g} is probably too small: the distance term outweighs the margin; raise c "
            "or set binary_search_steps > 0"
        )
    else:
        largest = float(result.c[~result.success].max())
        reasons.append(f"even c={largest:g} did not reach the target: raise c, steps or lr")
    return (
        f"carlini_wagner reached the target for only {result.success_rate:.0%} of the samples; "
        "likely reasons: " + "; ".join(reasons)
    )
