"""Hyper-parameter tuning procedures."""

from smallml.tuning.lr_range_test import LRRangeTestResult, default_lrs, lr_range_test

__all__ = ["LRRangeTestResult", "default_lrs", "lr_range_test"]
