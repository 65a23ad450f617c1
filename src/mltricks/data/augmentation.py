"""Batched image augmentation: a random rotation, shift and flip drawn per sample, in one call.

``torchvision.transforms.v2.RandomAffine`` draws one set of parameters per call, so a batch
``(B, C, H, W)`` gets the same rotation and shift for every image. ``RandomShiftRotate`` keeps
torchvision's geometry and its parameter ranges but draws ``B`` independent sets and applies them
with one ``grid_sample`` call, which is what training on augmented mini-batches needs (the
semi-supervised views, the triplet-embedding batches). ``affine_batch`` is the deterministic
part: ``v2.functional.affine`` for every image of a batch, each with its own parameters.

Draws use torch's global generator, as torchvision's transforms do: ``torch.manual_seed`` (or
the lab's ``engine.seed_everything``) makes them repeatable.

Example:
    >>> import torch
    >>> from mltricks.data import augmentation
    >>> augment = augmentation(degrees=10.0, translate=0.125, noise=0.05)
    >>> augment(torch.rand(32, 1, 8, 8)).shape
    torch.Size([32, 1, 8, 8])
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from mltricks._utils.checks import check_choice, check_number

__all__ = ["PADDING_MODES", "RandomShiftRotate", "affine_batch", "augmentation"]

PADDING_MODES = ("zeros", "border", "reflection")


def affine_batch(
    images: torch.Tensor,
    angles: torch.Tensor,
    shifts: torch.Tensor,
    *,
    flips: torch.Tensor | None = None,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Rotate and shift every image of a batch by its own parameters, in one call.

    Image ``i`` becomes ``v2.functional.affine(images[i], angle=angles[i],
    translate=shifts[i], scale=1, shear=0, interpolation=BILINEAR)``: a rotation by
    ``angles[i]`` degrees (counter-clockwise, about the image centre) followed by a shift of
    ``shifts[i] = (dx, dy)`` pixels (right, down). With ``flips``, image ``i`` is first mirrored
    left-right where ``flips[i]`` is true (as ``v2.RandomHorizontalFlip`` before
    ``v2.RandomAffine``).

    Args:
        images: ``(B, C, H, W)`` floating-point images.
        angles: ``(B,)`` rotation angles in degrees.
        shifts: ``(B, 2)`` shifts in pixels, ``(dx, dy)``; fractional shifts interpolate.
        flips: optional ``(B,)`` booleans: mirror image ``i`` first.
        padding_mode: what fills pixels that come from outside the image: ``"zeros"``
            (torchvision's fill 0), ``"border"`` (the nearest edge pixel) or ``"reflection"``.

    Returns:
        ``(B, C, H, W)`` transformed images, dtype and device of ``images``.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a tensor (B, C, H, W); got {_shape(images)}")
    if not images.is_floating_point():
        raise TypeError(f"images must be floating point; got {images.dtype}")
    num = len(images)
    if angles.shape != (num,):
        raise ValueError(f"angles must have shape ({num},) for {num} images; got {_shape(angles)}")
    if shifts.shape != (num, 2):
        raise ValueError(
            f"shifts must have shape ({num}, 2) for {num} images; got {_shape(shifts)}"
        )
    if flips is not None and flips.shape != (num,):
        raise ValueError(f"flips must have shape ({num},) for {num} images; got {_shape(flips)}")
    check_choice("padding_mode", padding_mode, PADDING_MODES)
    height, width = images.shape[-2:]
    angles = angles.to(images)
    shifts = shifts.to(images)
    radians = torch.deg2rad(angles)
    cos, sin = radians.cos(), radians.sin()
    # torchvision's inverse matrix (output pixel -> input pixel, origin at the image centre)
    tx, ty = shifts[:, 0], shifts[:, 1]
    m02 = -cos * tx - sin * ty
    m12 = sin * tx - cos * ty
    # the same map in grid_sample's normalised coordinates (x / (W/2), y / (H/2))
    theta = torch.stack(
        [
            torch.stack([cos, sin * height / width, m02 * 2 / width], dim=1),
            torch.stack([-sin * width / height, cos, m12 * 2 / height], dim=1),
        ],
        dim=1,
    )  # (B, 2, 3)
    if flips is not None:
        # flip, then rotate and shift: the inverse map mirrors the x coordinate it returns
        mirror = torch.where(flips.to(images.device, torch.bool), -1.0, 1.0).to(images)
        theta = torch.cat([theta[:, :1] * mirror[:, None, None], theta[:, 1:]], dim=1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(
        images, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False
    )


class RandomShiftRotate(nn.Module):
    """A random rotation, a random whole-pixel shift and optionally a flip, drawn per sample.

    The parameters are those ``v2.RandomAffine(degrees, translate=(translate, translate))``
    draws (an angle uniform in ``[-degrees, degrees]``, a shift uniform in ``[-translate * W,
    translate * W] x [-translate * H, translate * H]`` rounded to whole pixels) and, with
    ``flip``, a left-right mirror with probability 1/2 applied first; but every image of a batch
    gets its own draw, and the batch is transformed in one ``affine_batch`` call.

    Args:
        degrees: largest absolute rotation angle, in degrees.
        translate: largest shift as a share of the width and height.
        flip: also mirror each image left-right with probability 1/2 (photos, not digits).
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"`` (see ``affine_batch``).

    Shape:
        - Input: ``(B, C, H, W)`` or one image ``(C, H, W)``.
        - Output: the input's shape, floating point.

    Example:
        >>> augment = RandomShiftRotate(degrees=10.0, translate=0.125)
        >>> augment(torch.rand(4, 1, 8, 8)).shape
        torch.Size([4, 1, 8, 8])
    """

    def __init__(
        self,
        degrees: float = 10.0,
        translate: float = 0.125,
        *,
        flip: bool = False,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        check_number("degrees", degrees, low=0.0, high=180.0)
        check_number("translate", translate, low=0.0, high=1.0)
        check_choice("padding_mode", padding_mode, PADDING_MODES)
        self.degrees, self.translate = float(degrees), float(translate)
        self.flip, self.padding_mode = bool(flip), padding_mode

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.dim() not in (3, 4):
            raise ValueError(
                f"images must be a tensor (B, C, H, W) or (C, H, W); got {_shape(images)}"
            )
        batched = images.dim() == 4
        batch = images if batched else images.unsqueeze(0)
        num, height, width = batch.shape[0], batch.shape[-2], batch.shape[-1]
        device, dtype = batch.device, batch.dtype if batch.is_floating_point() else torch.float32
        # the order of the draws (angles, shifts, flips) is part of the result: keep it
        angles = (torch.rand(num, device=device) * 2 - 1) * self.degrees
        limits = torch.tensor([self.translate * width, self.translate * height], device=device)
        shifts = torch.round((torch.rand(num, 2, device=device) * 2 - 1) * limits)
        flips = torch.rand(num, device=device) < 0.5 if self.flip else None
        out = affine_batch(
            batch.to(dtype), angles, shifts, flips=flips, padding_mode=self.padding_mode
        )
        return out if batched else out.squeeze(0)

    def extra_repr(self) -> str:
        text = f"degrees={self.degrees}, translate={self.translate}"
        if self.flip:
            text += ", flip=True"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode!r}"
        return text


def augmentation(
    degrees: float = 10.0,
    translate: float = 0.125,
    noise: float = 0.05,
    *,
    flip: bool = False,
    padding_mode: str = "zeros",
) -> v2.Compose:
    """Augmentation for image batches in [0, 1]: rotation, shift (and flip), clipped noise.

    ``v2.Compose([RandomShiftRotate(degrees, translate, flip=flip, padding_mode=padding_mode),
    v2.GaussianNoise(sigma=noise, clip=True)])``; the noise step is left out when ``noise`` is 0.

    Args:
        degrees: largest rotation angle, in degrees.
        translate: largest shift as a share of the image size (1 pixel of 8 for 0.125).
        noise: standard deviation of the additive Gaussian noise (0 disables it).
        flip: also mirror each image left-right with probability 1/2.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"`` (see ``affine_batch``).

    Returns:
        A callable on ``(B, C, H, W)`` batches (or single images) that keeps the shape.
    """
    check_number("noise", noise, low=0.0)
    steps: list[Any] = [RandomShiftRotate(degrees, translate, flip=flip, padding_mode=padding_mode)]
    if noise > 0:
        steps.append(v2.GaussianNoise(mean=0.0, sigma=noise, clip=True))
    return v2.Compose(steps)


def _shape(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"shape {tuple(value.shape)}"
    return f"{type(value).__name__}"
