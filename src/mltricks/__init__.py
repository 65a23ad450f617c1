"""mltricks: classic machine-learning techniques as small, tested components.

Import from the families, for example ``from mltricks.tuning import lr_range_test``.
"""

# the one place the version is defined: pyproject.toml reads it ([tool.setuptools.dynamic])
__version__ = "0.2.0"
