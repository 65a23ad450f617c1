"""Semi-supervised learning: estimators that use unlabeled samples (``-1`` labels) and losses
computed on unlabeled data."""

__all__: list[str] = []
