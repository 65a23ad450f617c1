"""Models used by the techniques and the lab."""

from smallml.models.resnet import small_resnet18
from smallml.models.small_cnn import SmallCNN

__all__ = ["SmallCNN", "small_resnet18"]
