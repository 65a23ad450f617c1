"""Adversarial attacks on image classifiers.

The shared contract: an attack takes a model that returns logits ``(B, num_classes)`` (a tuple
output counts by its first element), inputs ``(B, ...)`` inside the valid range ``clamp`` and
the classes, and returns *new* tensors; the input is never modified. The model runs in eval mode
during the attack and comes back as it was found: modes, weights and parameter gradients (the
attacks take input gradients with ``torch.autograd.grad`` and never write ``.grad``).

Return convention: an attack returns the adversarial batch, a detached tensor shaped like ``x``
(as torchattacks and captum's attacks do), so attacks swap for one another. With
``return_result=True`` it returns an ``AttackResult`` instead: that tensor as ``.adversarial``
and per-sample ``.success`` (``CarliniWagnerResult`` adds ``l2``, ``margin`` and ``c``). Until
0.3.0 ``carlini_wagner`` called without ``return_result`` still returns its result object, with
a ``DeprecationWarning`` (deprecated in 0.2.0).
"""

from mltricks.attacks.carlini_wagner import carlini_wagner
from mltricks.attacks.fgsm import fgsm
from mltricks.attacks.result import AttackResult, CarliniWagnerResult

__all__ = ["AttackResult", "CarliniWagnerResult", "carlini_wagner", "fgsm"]
