"""Explanations of image classifiers: attribution maps and the benchmarks that score them.

The shared contract: an explainer is a method object with one verb,
``explainer.attribute(x, target)``, taking inputs ``(B, ...)`` and the explained classes (an int
or ``(B,)``), and returning a map shaped like ``x``. Scores are the model's logits (a tuple output
counts by its first element). The model runs in eval mode and is left as found: no hook stays
behind (also after an error), modes come back, parameter gradients and the input's ``.grad``
are never written. Variants wrap: ``SmoothGrad(Saliency(model))``,
``SmoothGrad(GuidedBackprop(model))``.

Maps are scored by weak boxes (``box_from_attribution``, IoU against a true box), by masking an
object step by step (``masking_curve``) and by deleting the most relevant pixels first against a
random order (``deletion_curve``).

Return convention: ``attribute`` returns a tensor shaped like ``x``; a curve function takes
``(model, x, target, region_or_attribution, steps, *, fill, output)`` and returns a curve
object with ``fractions`` ``(steps + 1,)`` (the share masked or deleted), ``scores``
``(B, steps + 1)`` and ``auc`` ``(B,)``: ``MaskingCurve`` and ``DeletionCurve`` (which adds the
random-order baseline ``random_scores`` / ``random_auc``). Curves read probabilities by default
(``output="probs"``, as RISE does); ``masking_curve`` reads logits when ``output`` is left out
until 0.3.0, with a ``DeprecationWarning`` (deprecated in 0.2.0). Until 0.3.0 a ``MaskingCurve``
used as a tensor acts as its ``scores`` (what ``masking_curve`` returned before), with a
``DeprecationWarning``. Randomness comes from ``random_state``: an int (the
same draws every call), a ``torch.Generator`` or None.
"""

from mltricks.explain.box_from_attribution import box_from_attribution
from mltricks.explain.deletion_curve import DeletionCurve, deletion_curve
from mltricks.explain.guided_backprop import GuidedBackprop
from mltricks.explain.masking_curve import MaskingCurve, masking_curve
from mltricks.explain.saliency import Saliency
from mltricks.explain.smooth_grad import SmoothGrad

__all__ = [
    "DeletionCurve",
    "GuidedBackprop",
    "MaskingCurve",
    "Saliency",
    "SmoothGrad",
    "box_from_attribution",
    "deletion_curve",
    "masking_curve",
]
