"""A ResNet with two heads on one backbone: class logits and a metric embedding."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mltricks._utils.checks import check_number
from mltricks.models.checkpoint import load_weights_file
from mltricks.models.resnet import small_resnet18

BACKBONES = ("resnet18",)


def _load_backbone_weights(backbone: nn.Module, weights: str | Path) -> None:
    path = Path(weights).expanduser()
    state = load_weights_file(path, what="backbone weights file")
    if any(key.startswith("backbone.") for key in state):  # a saved MultiHeadResNet
        state = {k.removeprefix("backbone."): v for k, v in state.items() if "backbone." in k}
    # the classifier of the file belongs to another task: only the feature layers are loaded
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    expected = {k for k in backbone.state_dict() if not k.startswith("fc.")}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"weights file '{path}' does not hold a small_resnet18 backbone: missing "
            f"{missing[:5]}, unexpected {unexpected[:5]}"
        )
    try:
        backbone.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatch: other in_channels or an ImageNet stem
        raise ValueError(f"weights file '{path}' does not fit this backbone: {error}") from None


class MultiHeadResNet(nn.Module):
    """torchvision's ResNet-18 (small-image stem) with an embedding head and a classifier head.

    Both heads read the backbone's 512 pooled features: the classifier is one linear layer, the
    embedding head a two-layer MLP to ``embedding_dim`` (2 for a plot of the embedding space, 16
    or more for retrieval). Train it with cross-entropy on the logits plus a metric loss on the
    embeddings (``mltricks.metric_learning.TripletMarginLoss``); every parameter trains, the
    backbone included.

    Args:
        num_classes: outputs of the classifier head.
        embedding_dim: size of the embedding.
        backbone: ``"resnet18"`` (``mltricks.models.small_resnet18``, 3x3 stride-1 stem, no
            max-pool), or an ``nn.Module`` mapping images to ``(B, feature_dim)`` features.
        in_channels: input channels of the ResNet.
        weights: optional local state-dict file of a ``small_resnet18`` (its ``fc`` is ignored)
            or of a ``MultiHeadResNet`` (its backbone part is used); random initialisation when
            None. Nothing is downloaded.
        feature_dim: feature size of a module ``backbone`` (its ``feature_dim`` attribute when
            None).

    Shapes:
        ``forward(x (B, C, H, W)) -> (logits (B, num_classes), embeddings (B, embedding_dim))``.

    Example:
        >>> model = MultiHeadResNet(6, embedding_dim=2, in_channels=3)
        >>> logits, embeddings = model(torch.zeros(4, 3, 32, 32))
        >>> logits.shape, embeddings.shape
        (torch.Size([4, 6]), torch.Size([4, 2]))
    """

    def __init__(
        self,
        num_classes: int,
        *,
        embedding_dim: int = 2,
        backbone: str | nn.Module = "resnet18",
        in_channels: int = 3,
        weights: str | Path | None = None,
        feature_dim: int | None = None,
    ) -> None:
        super().__init__()
        check_number("num_classes", num_classes, low=1, integer=True)
        check_number("embedding_dim", embedding_dim, low=1, integer=True)
        check_number("in_channels", in_channels, low=1, integer=True)
        if isinstance(backbone, str):
            if backbone not in BACKBONES:
                raise ValueError(
                    f"backbone must be one of {BACKBONES} or an nn.Module; got {backbone!r}"
                )
            network = small_resnet18(in_channels, num_classes)
            if weights is not None:
                _load_backbone_weights(network, weights)
            feature_dim = int(network.fc.in_features)  # type: ignore[union-attr,arg-type]
            network.fc = nn.Identity()  # the heads below replace the classifier
        elif isinstance(backbone, nn.Module):
            if weights is not None:
                raise ValueError("weights applies to backbone='resnet18'; load a module's own")
            network = backbone
            feature_dim = (
                feature_dim if feature_dim is not None else getattr(network, "feature_dim", None)
            )
            if feature_dim is None:
                raise ValueError(
                    "feature_dim is needed for a module backbone without a feature_dim attribute"
                )
        else:
            raise TypeError(
                f"backbone must be a name in {BACKBONES} or an nn.Module; got {type(backbone)}"
            )
        check_number("feature_dim", feature_dim, low=1, integer=True)
        assert feature_dim is not None
        self.backbone = network
        self.feature_dim = int(feature_dim)
        self.embedding_dim = int(embedding_dim)
        self.classifier = nn.Linear(self.feature_dim, num_classes)
        hidden = max(self.feature_dim // 2, 2 * embedding_dim)
        self.embedding_head = nn.Sequential(
            nn.Linear(self.feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, embedding_dim)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(x)  # (B, feature_dim)
        return self.classifier(features), self.embedding_head(features)
