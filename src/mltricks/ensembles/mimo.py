"""MIMO: M independent subnetworks inside one network (Havasi et al. 2021).

https://openreview.net/forum?id=OGg9XnKxFAH

The input layer takes the M member inputs stacked on the channel dimension and the head gives
M x num_classes logits. In training every member sees its own, independently shuffled example
(``MIMOBatchSampler`` builds those batches), so the subnetworks learn to ignore each other's
inputs; at test time the same image goes to every member and one forward pass gives an ensemble
of M predictions. The only extra cost is the wider input layer and head.

Layout: member ``m`` owns input channels ``m * C .. (m + 1) * C - 1`` and head outputs
``m * K .. (m + 1) * K - 1``. Training (``forward``) and test (``predict``) go through the same
stacking code, so their layouts cannot drift apart.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mltricks._utils.checks import check_module, check_number

_INPUT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


class MIMO(nn.Module):
    """Turn a feature extractor into a multi-input multi-output ensemble of ``num_members``.

    Args:
        backbone: maps ``(B, in_channels, ...)`` to features ``(B, feature_dim)`` (a ResNet with
            ``fc = nn.Identity()``, ``SmallCNN(...).features``, an MLP, ...). It is copied; the
            copy's input layer is replaced by one taking ``num_members * in_channels`` channels.
        num_members: ensemble size M (1 gives a plain network).
        feature_dim: size of the backbone's output features.
        num_classes: classes K of each member.
        in_channels: channels (or features, for a ``Linear`` input layer) of one member's input.
        input_layer: name of the backbone's input layer (``"conv1"``); by default the first
            ``Conv1d/2d/3d`` or ``Linear`` module, which must take ``in_channels`` inputs.

    Shapes:
        ``forward``: ``(M, B, in_channels, ...)`` -> logits ``(M, B, num_classes)``.
        ``predict``: ``(B, in_channels, ...)`` -> logits ``(M, B, num_classes)``.

    Example:
        >>> from mltricks.models import SmallCNN
        >>> cnn = SmallCNN(1, 10)
        >>> mimo = MIMO(cnn.features, num_members=3, feature_dim=cnn.feature_dim,
        ...             num_classes=10, in_channels=1)
        >>> mimo(torch.zeros(3, 4, 1, 8, 8)).shape, mimo.predict(torch.zeros(4, 1, 8, 8)).shape
        (torch.Size([3, 4, 10]), torch.Size([3, 4, 10]))
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        num_members: int = 3,
        feature_dim: int,
        num_classes: int,
        in_channels: int,
        input_layer: str | None = None,
    ) -> None:
        super().__init__()
        check_module("backbone", backbone)
        check_number("num_members", num_members, low=1, integer=True)
        check_number("feature_dim", feature_dim, low=1, integer=True)
        check_number("num_classes", num_classes, low=1, integer=True)
        check_number("in_channels", in_channels, low=1, integer=True)
        self.num_members = num_members
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.backbone = copy.deepcopy(backbone)
        self.input_layer = _find_input_layer(self.backbone, in_channels, input_layer)
        old = self.backbone.get_submodule(self.input_layer)
        self.backbone.set_submodule(self.input_layer, _widen(old, num_members))
        self.head = nn.Linear(feature_dim, num_members * num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(M, B, num_classes)`` for member inputs ``(M, B, in_channels, ...)``."""
        if x.dim() < 3 or x.shape[0] != self.num_members or x.shape[2] != self.in_channels:
            raise ValueError(
                f"x must have shape (num_members={self.num_members}, B, "
                f"in_channels={self.in_channels}, ...); got {tuple(x.shape)}"
            )
        batch = x.shape[1]
        # (M, B, C, ...) -> (B, M, C, ...) -> (B, M * C, ...): member m owns channels m*C..
        stacked = x.transpose(0, 1).reshape(
            batch, self.num_members * self.in_channels, *x.shape[3:]
        )
        features = self.backbone(stacked)
        if features.shape != (batch, self.feature_dim):
            raise ValueError(
                f"the backbone must return features (B, feature_dim={self.feature_dim}); it "
                f"returned {tuple(features.shape)} (remove its classifier, e.g. fc = Identity)"
            )
        logits = self.head(features)  # (B, M * K)
        return logits.view(batch, self.num_members, self.num_classes).transpose(0, 1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The ensemble's logits ``(M, B, num_classes)`` for one input ``(B, in_channels, ...)``,
        repeated for every member in one forward pass."""
        if x.dim() < 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must have shape (B, in_channels={self.in_channels}, ...); got {tuple(x.shape)}"
            )
        return self(x.unsqueeze(0).expand(self.num_members, *x.shape))


def mimo_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The MIMO training loss: the members' cross-entropies, each averaged over the batch, summed.

    Args:
        logits: ``(M, B, num_classes)``.
        targets: ``(M, B)`` class indices, member ``m``'s labels in row ``m``.
    """
    if logits.dim() != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(
            f"logits must be (M, B, num_classes) and targets (M, B); got {tuple(logits.shape)} "
            f"and {tuple(targets.shape)}"
        )
    per_member = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
    return per_member.view(targets.shape).mean(1).sum()


def _find_input_layer(backbone: nn.Module, in_channels: int, name: str | None) -> str:
    """The name of the layer that reads the backbone's input."""
    layers = [(n, m) for n, m in backbone.named_modules() if isinstance(m, _INPUT_LAYERS)]
    if name is None:
        if not layers:
            raise ValueError(
                f"backbone {type(backbone).__name__} has no Conv1d/2d/3d or Linear layer to "
                "widen into the MIMO input layer"
            )
        name, layer = layers[0]
    else:
        try:
            module = backbone.get_submodule(name)
        except AttributeError:
            raise ValueError(f"input_layer {name!r} is not a module of the backbone") from None
        if not isinstance(module, _INPUT_LAYERS):
            raise ValueError(
                f"input_layer {name!r} must be a Conv1d/2d/3d or Linear layer; got "
                f"{type(module).__name__}"
            )
        layer = module
    width = layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels
    if width != in_channels:
        raise ValueError(
            f"in_channels={in_channels} does not match the backbone's input layer {name!r} "
            f"({type(layer).__name__} with {width} input channels); pass the member input's "
            "channels, or name the input layer with input_layer="
        )
    if not isinstance(layer, nn.Linear) and layer.groups != 1:
        raise ValueError(f"the input layer {name!r} is a grouped convolution; MIMO needs groups=1")
    return name


def _widen(layer: nn.Module, num_members: int) -> nn.Module:
    """A fresh copy of ``layer`` that takes ``num_members`` times as many input channels."""
    if not isinstance(layer, _INPUT_LAYERS):
        raise TypeError(f"cannot widen a {type(layer).__name__}")
    factory = {"device": layer.weight.device, "dtype": layer.weight.dtype}
    if isinstance(layer, nn.Linear):
        return nn.Linear(
            layer.in_features * num_members, layer.out_features, layer.bias is not None, **factory
        )
    conv: Any = type(layer)  # Conv1d/2d/3d share these arguments
    return conv(
        layer.in_channels * num_members,
        layer.out_channels,
        layer.kernel_size,
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
        bias=layer.bias is not None,
        padding_mode=layer.padding_mode,
        **factory,
    )
