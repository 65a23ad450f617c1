"""One training step of semi-supervised learning with unlabeled-data losses, and its ramp-up.

``SemiSupervisedStep`` turns a batch of ``mltricks.data.semi_supervised_loader`` into the loss

    CE(labeled) + ramp(t) * (w_TS * stability + w_ME * exclusivity + w_C * consistency)

where the unsupervised terms are computed on augmented views of the unlabeled samples
(Sajjadi, Javanmardi and Tasdizen 2016, https://arxiv.org/abs/1606.04586 and
https://arxiv.org/abs/1606.03141; the consistency term as the Pi-model of Laine and Aila 2017,
https://arxiv.org/abs/1610.02242) and ``ramp`` is Laine and Aila's sigmoid-shaped ramp-up
``exp(-5 (1 - t)^2)``, ``t`` the share of ``rampup_steps`` done.

BatchNorm: the labeled samples, the clean unlabeled samples (when consistency is on) and every
augmented view of the unlabeled samples go through the model in **one forward pass**, in the
model's current mode. Each BatchNorm layer therefore normalises with the statistics of one batch
that mixes labeled and unlabeled samples, the same batch for every branch: the supervised and
unsupervised predictions are computed under the same normalisation, and the running statistics
used at test time describe the whole training distribution rather than the few labeled samples.
Through the batch statistics the unlabeled samples also shape the supervised term a little.
When every unsupervised weight is 0 (the supervised baseline) only the labeled samples are
forwarded, so the baseline is plain supervised training on the same labeled batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mltricks._utils.checks import check_number
from mltricks._utils.classifier import logits_of
from mltricks.data.augmentation import augmentation
from mltricks.data.labeled_unlabeled import check_class_labels
from mltricks.semi_supervised.consistency_loss import consistency_loss
from mltricks.semi_supervised.mutual_exclusivity_loss import mutual_exclusivity_loss
from mltricks.semi_supervised.stability_loss import stability_loss

__all__ = ["SemiSupervisedStep", "sigmoid_rampup"]


def sigmoid_rampup(step: int, rampup_steps: int) -> float:
    """Laine and Aila's ramp-up weight ``exp(-5 (1 - t)^2)``, ``t = min(step / rampup_steps, 1)``.

    Args:
        step: optimizer steps done so far (>= 0).
        rampup_steps: steps until the full weight 1; 0 gives the full weight from the start.

    Returns:
        A weight in ``[exp(-5), 1]`` (about 0.0067 at step 0), 1 from ``rampup_steps`` on.

    Example:
        >>> sigmoid_rampup(0, 10) == math.exp(-5), sigmoid_rampup(10, 10)
        (True, 1.0)
    """
    check_number("step", step, low=0)
    check_number("rampup_steps", rampup_steps, low=0)
    if rampup_steps == 0:
        return 1.0
    progress = min(step / rampup_steps, 1.0)
    return math.exp(-5.0 * (1.0 - progress) ** 2)


class SemiSupervisedStep:
    """Loss of one semi-supervised batch: supervised cross-entropy plus ramped unlabeled terms.

    A step function in the shape ``engine.fit`` (and any plain loop) calls:
    ``loss, logs = step(model, (x_l, y_l, x_u))``. ``l_TS`` (stability) and ``l_ME`` (mutual
    exclusivity) use ``num_views`` augmented views of every unlabeled sample (``l_ME`` averaged
    over views); ``l_C`` (consistency) compares the clean unlabeled sample (the target) with its
    first augmented view. Labeled samples are augmented once. All inputs go through the model in
    one forward pass (see the module docstring for why). The step counts its calls: call ``i``
    (from 0) weighs the unsupervised terms by ``sigmoid_rampup(i, rampup_steps)``.

    Args:
        num_classes: outputs of the model; labels outside ``0..num_classes-1`` raise.
        stability: weight ``w_TS`` of ``stability_loss`` (needs ``num_views >= 2``).
        exclusivity: weight ``w_ME`` of ``mutual_exclusivity_loss``.
        consistency: weight ``w_C`` of ``consistency_loss``.
        num_views: augmented views per unlabeled sample for stability and exclusivity.
        rampup_steps: calls over which the unsupervised weights ramp up (0: full weight at once).
        augment: callable on sample batches, ``mltricks.data.augmentation()`` by default (random
            rotation and shift, Gaussian noise: for images in [0, 1]).
        detach_target: stop gradients through the clean branch of the consistency loss.

    Shape:
        - Batch: ``x_l (B, ...)``, ``y_l (B,)`` int64, ``x_u (B, r, ...)``.
        - The model maps ``(N, ...)`` to logits ``(N, num_classes)`` (or a tuple whose first
          element is the logits).
        - Returns: a scalar loss and a dict of floats: ``sup_loss``, ``accuracy`` (labeled,
          augmented) and, when an unsupervised weight is on, each term on, ``unsup_loss`` (the
          weighted sum before the ramp) and ``ramp``.

    Example:
        >>> from mltricks.data import semi_supervised_loader
        >>> from mltricks.models import SmallCNN
        >>> loader = semi_supervised_loader(
        ...     torch.rand(20, 1, 8, 8), torch.arange(20) % 10, torch.rand(100, 1, 8, 8),
        ...     batch_size=10, unlabeled_ratio=2, random_state=0)
        >>> model = SmallCNN(1, 10, width=8)
        >>> step = SemiSupervisedStep(num_classes=10, stability=1.0, exclusivity=0.5,
        ...                           rampup_steps=100)
        >>> loss, logs = step(model, next(iter(loader)))
        >>> loss.backward()
    """

    def __init__(
        self,
        *,
        num_classes: int,
        stability: float = 0.0,
        exclusivity: float = 0.0,
        consistency: float = 0.0,
        num_views: int = 2,
        rampup_steps: int = 0,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
        detach_target: bool = False,
    ) -> None:
        check_number("num_classes", num_classes, low=2, integer=True)
        for name, value in (
            ("stability", stability),
            ("exclusivity", exclusivity),
            ("consistency", consistency),
        ):
            check_number(name, value, low=0.0)
        check_number("num_views", num_views, low=1, integer=True)
        if stability > 0 and num_views < 2:
            raise ValueError(
                f"num_views must be >= 2 when the stability loss is on (stability={stability}); "
                f"got {num_views}"
            )
        check_number("rampup_steps", rampup_steps, low=0, integer=True)
        if augment is not None and not callable(augment):
            raise TypeError(f"augment must be callable on a batch or None; got {augment!r:.80}")
        self.num_classes = num_classes
        self.weights = {
            "stability": float(stability),
            "exclusivity": float(exclusivity),
            "consistency": float(consistency),
        }
        self.num_views = num_views
        self.rampup_steps = rampup_steps
        self.augment = augment if augment is not None else augmentation()
        self.detach_target = detach_target
        self.steps_done = 0

    @property
    def unsupervised(self) -> bool:
        """Whether any unsupervised term is on (otherwise unlabeled samples are not forwarded)."""
        return any(weight > 0 for weight in self.weights.values())

    def __call__(
        self, model: nn.Module, batch: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if len(batch) != 3:
            raise ValueError(
                "batch must be (x_labeled, y_labeled, x_unlabeled) from semi_supervised_loader; "
                f"got {len(batch)} tensors"
            )
        labeled_x, labeled_y, unlabeled_x = batch
        check_class_labels(labeled_y, self.num_classes, "labeled targets (batch[1])")
        ramp = sigmoid_rampup(self.steps_done, self.rampup_steps)
        self.steps_done += 1
        unlabeled = unlabeled_x.flatten(0, 1)  # (B * r, ...)
        num_views = self._num_views()
        inputs = self._inputs(labeled_x, unlabeled, num_views)
        logits = logits_of(model(torch.cat(inputs)))  # one forward pass: see BatchNorm
        if logits.shape[-1] != self.num_classes:
            raise ValueError(
                f"num_classes is {self.num_classes} but the model outputs {logits.shape[-1]}"
            )
        num_labeled = len(labeled_x)
        supervised = F.cross_entropy(logits[:num_labeled], labeled_y)
        logs = {
            "sup_loss": float(supervised.detach()),
            "accuracy": float((logits[:num_labeled].argmax(1) == labeled_y).float().mean()),
        }
        if not self.unsupervised:
            return supervised, logs
        terms = self._unsupervised_terms(logits[num_labeled:], len(unlabeled), num_views)
        unsupervised = torch.stack([self.weights[n] * value for n, value in terms.items()]).sum()
        logs.update({name: float(value.detach()) for name, value in terms.items()})
        logs.update({"unsup_loss": float(unsupervised.detach()), "ramp": ramp})
        return supervised + ramp * unsupervised, logs

    def _num_views(self) -> int:
        """Augmented views per unlabeled sample: ``num_views`` for stability/exclusivity, else 1."""
        use_views = self.weights["stability"] > 0 or self.weights["exclusivity"] > 0
        return self.num_views if use_views else 1

    def _inputs(
        self, labeled_x: torch.Tensor, unlabeled: torch.Tensor, num_views: int
    ) -> list[torch.Tensor]:
        """The parts of the one forward pass: augmented labeled samples, then (when an
        unsupervised term is on) the clean unlabeled samples for consistency and the views."""
        inputs = [self.augment(labeled_x)]
        if not self.unsupervised:
            return inputs
        if len(unlabeled) == 0:
            raise ValueError("x_unlabeled (batch[2]) is empty but an unsupervised weight is on")
        if self.weights["consistency"] > 0:
            inputs.append(unlabeled)  # the clean target branch
        inputs.extend(self.augment(unlabeled) for _ in range(num_views))
        return inputs

    def _unsupervised_terms(
        self, logits: torch.Tensor, num_unlabeled: int, num_views: int
    ) -> dict[str, torch.Tensor]:
        """Each unsupervised loss that is on, from the logits after the labeled ones."""
        terms: dict[str, torch.Tensor] = {}
        if self.weights["consistency"] > 0:
            clean, logits = logits[:num_unlabeled], logits[num_unlabeled:]
            terms["consistency"] = consistency_loss(
                clean, logits[:num_unlabeled], detach_target=self.detach_target
            )
        views = logits.reshape(num_views, num_unlabeled, -1)  # (n_views, B * r, C)
        if self.weights["stability"] > 0:
            terms["stability"] = stability_loss(views)
        if self.weights["exclusivity"] > 0:
            terms["exclusivity"] = mutual_exclusivity_loss(views)
        return terms

    def __repr__(self) -> str:
        weights = ", ".join(f"{name}={value:g}" for name, value in self.weights.items() if value)
        return (
            f"{type(self).__name__}(num_classes={self.num_classes}"
            f"{', ' + weights if weights else ''}, num_views={self.num_views}, "
            f"rampup_steps={self.rampup_steps}, steps_done={self.steps_done})"
        )
