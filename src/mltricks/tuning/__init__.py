"""Hyper-parameter tuning procedures.

Return convention: a procedure returns one result dataclass of everything it measured and the
choice it makes from it (``lr_range_test`` -> ``LRRangeTestResult`` with the losses, slopes
and ``best_lr``), and leaves the model and the global random state as it found them.
Randomness comes from ``random_state``.
"""

from mltricks.tuning.lr_range_test import OPTIMIZERS, LRRangeTestResult, default_lrs, lr_range_test

__all__ = ["OPTIMIZERS", "LRRangeTestResult", "default_lrs", "lr_range_test"]
