"""mltricks: classic machine-learning techniques as small, tested components.

Import from the families, for example ``from mltricks.tuning import lr_range_test``.
"""

__version__ = "0.1.0"
