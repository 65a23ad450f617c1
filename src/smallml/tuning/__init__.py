"""Hyper-parameter tuning procedures."""

from smallml.tuning.lr_range_test import OPTIMIZERS, LRRangeTestResult, default_lrs, lr_range_test

__all__ = ["OPTIMIZERS", "LRRangeTestResult", "default_lrs", "lr_range_test"]
