"""Meta-learning: learn an initialisation from many small tasks, then adapt it to a new one.

Shared contract: a task is a ``mltricks.data.Task`` (``support_x``, ``support_y``, ``query_x``,
``query_y``) or an ``(inputs, targets)`` pair. ``reptile`` meta-trains a model in place from an
iterable of tasks; ``adapt`` returns an adapted copy and ``adapt_and_predict`` the query outputs
of adapted copies for many tasks at once, leaving the model unchanged. BatchNorm behaviour at
meta-test time is non-transductive unless ``transductive=True`` (see ``mltricks.meta.adapt``).

Return convention: a procedure that trains the model in place returns a result dataclass of
what it recorded (``reptile`` -> ``ReptileResult``); one that leaves the model unchanged returns
what it made: an adapted copy (``adapt``) or, per task, the query outputs of the adapted copy
(``adapt_and_predict``: a list of tensors ``(num_queries, ...)``).
"""

from mltricks.meta.adapt import NON_TRANSDUCTIVE, TRANSDUCTIVE, adapt, adapt_and_predict
from mltricks.meta.reptile import ReptileResult, reptile

__all__ = [
    "NON_TRANSDUCTIVE",
    "TRANSDUCTIVE",
    "ReptileResult",
    "adapt",
    "adapt_and_predict",
    "reptile",
]
