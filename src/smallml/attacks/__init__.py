"""Adversarial attacks on image classifiers.

The shared contract: an attack takes a model that returns logits ``(B, num_classes)`` (a tuple
output counts by its first element), inputs ``(B, ...)`` inside the valid range ``clamp`` and
the classes, and returns *new* tensors; the input is never modified. The model runs in eval mode
during the attack and comes back as it was found: modes, weights and parameter gradients (the
attacks take input gradients with ``torch.autograd.grad`` and never write ``.grad``).
"""

from smallml.attacks.carlini_wagner import CarliniWagnerResult, carlini_wagner
from smallml.attacks.fgsm import fgsm

__all__ = ["CarliniWagnerResult", "carlini_wagner", "fgsm"]
