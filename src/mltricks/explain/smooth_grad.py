"""SmoothGrad (Smilkov et al. 2017, https://arxiv.org/abs/1706.03825).

The average of an explainer's maps over ``num_samples`` noisy copies of the input. The noise is
zero-mean Gaussian with standard deviation ``noise * (max(x) - min(x))`` per sample, the paper's
"noise level" relative to the input range (the earlier implementation used uniform noise in
[0, 1), which shifts every input upwards). Copies are explained in batches of ``batch_size``.
"""

from __future__ import annotations

from typing import Any

import torch

from mltricks._utils.checks import check_choice, check_number
from mltricks._utils.classifier import check_inputs, expand_target
from mltricks._utils.randomness import torch_generator
from mltricks.explain._common import Explainer

NOISE_SCALES = ("range", "absolute")


class SmoothGrad:
    """Average any explainer's attribution over Gaussian-noised copies of the input.

    Args:
        explainer: an object with ``attribute(x, target)``, e.g. ``Saliency(model)`` or
            ``GuidedBackprop(model)``.
        num_samples: noisy copies per input.
        noise: the noise's standard deviation, as a share of each sample's value range
            (``noise_scale="range"``, the paper's choice; 0.1 to 0.2 works well) or in input
            units (``noise_scale="absolute"``, as captum's ``NoiseTunnel`` takes it).
        batch_size: noisy copies explained per call of the wrapped explainer; None: all
            ``num_samples * B`` at once.
        noise_scale: ``"range"`` or ``"absolute"``.
        random_state: an int (each call draws the same noise), a ``torch.Generator`` (advanced
            by every call) or None (fresh noise); the global random state is never used.

    Example:
        >>> from mltricks.explain import Saliency
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
        >>> smooth = SmoothGrad(Saliency(model), num_samples=10, random_state=0)
        >>> smooth.attribute(torch.rand(2, 1, 2, 2), target=1).shape
        torch.Size([2, 1, 2, 2])
    """

    def __init__(
        self,
        explainer: Explainer,
        *,
        num_samples: int = 50,
        noise: float = 0.15,
        batch_size: int | None = None,
        noise_scale: str = "range",
        random_state: int | torch.Generator | None = None,
    ) -> None:
        if not callable(getattr(explainer, "attribute", None)):
            raise TypeError(
                "explainer must have an attribute(x, target) method (e.g. Saliency(model)); "
                f"got {type(explainer).__name__}"
            )
        check_number("num_samples", num_samples, low=1, integer=True)
        check_number("noise", noise, low=0.0)
        if batch_size is not None:
            check_number("batch_size", batch_size, low=1, integer=True)
        check_choice("noise_scale", noise_scale, NOISE_SCALES)
        self.explainer = explainer
        self.model = getattr(explainer, "model", None)
        self.num_samples = num_samples
        self.noise = noise
        self.batch_size = batch_size
        self.noise_scale = noise_scale
        self.random_state = random_state

    def attribute(self, x: torch.Tensor, target: Any) -> torch.Tensor:
        """Mean attribution over noisy copies of ``x`` ``(B, ...)`` for ``target`` (an int or
        ``(B,)`` classes), shaped like ``x``."""
        x = check_inputs(x).detach()
        batch = len(x)
        target = _per_sample(target, batch, x.device)
        shape = (-1, *([1] * (x.dim() - 1)))
        if self.noise_scale == "range":
            flat = x.flatten(1)
            spread = self.noise * (flat.amax(1) - flat.amin(1))  # (B,)
        else:
            spread = torch.full((batch,), float(self.noise), device=x.device, dtype=x.dtype)
        generator = torch_generator(self.random_state, x.device)
        total = torch.zeros_like(x)
        num_copies = self.num_samples * batch
        chunk = self.batch_size or num_copies
        for start in range(0, num_copies, chunk):
            # copy k is a noisy version of sample k % B
            index = torch.arange(start, min(start + chunk, num_copies), device=x.device) % batch
            noise = torch.randn(
                (len(index), *x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype
            )
            noisy = x[index] + noise * spread[index].view(shape)
            chunk_target = target if isinstance(target, int) else target[index]
            total.index_add_(0, index, self.explainer.attribute(noisy, chunk_target).detach())
        return total / self.num_samples

    def __repr__(self) -> str:
        return (
            f"SmoothGrad({self.explainer!r}, num_samples={self.num_samples}, "
            f"noise={self.noise}, noise_scale={self.noise_scale!r})"
        )


def _per_sample(target: Any, batch: int, device: torch.device) -> int | torch.Tensor:
    """An int stays; anything else becomes a ``(B,)`` tensor the copies can be indexed with (the
    wrapped explainer checks the values)."""
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    return expand_target(torch.as_tensor(target, device=device), batch)
