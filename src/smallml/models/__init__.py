"""Models used by the techniques and the lab."""

from smallml.models.small_cnn import SmallCNN

__all__ = ["SmallCNN"]
