"""Deprecations that keep an old spelling working for one release, with a ``DeprecationWarning``
that names the versions ("Deprecated in 0.2.0; the old form will be removed in 0.3.0.").

``renamed_argument("seed", "random_state")`` decorates a function (or a class's ``__init__``)
whose keyword argument was renamed: a call with the old name warns and is passed on under the new
name; a call with both names is refused. The signature the decorator exposes is the new one
(``inspect.signature`` follows ``__wrapped__``), so scikit-learn's ``get_params`` and the docs see
only the new name.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# the release that deprecates (nothing was released before it) and the one that removes
DEPRECATED_IN = "0.2.0"
REMOVED_IN = "0.3.0"


def _public_name(func: Callable[..., Any]) -> str:
    """``"FewShotTasks"`` for ``FewShotTasks.__init__``, ``"make_bags"`` for a function."""
    name = func.__qualname__
    return name.removesuffix(".__init__")


def deprecation_warning(
    message: str,
    *,
    since: str = DEPRECATED_IN,
    removed_in: str = REMOVED_IN,
    stacklevel: int = 3,
) -> None:
    """Emit ``message`` as a ``DeprecationWarning`` that names the versions: the one that
    deprecates the old form and the one that removes it.

    ``stacklevel`` 3 points at the caller of the function that calls this one.
    """
    warnings.warn(
        f"{message} Deprecated in {since}; the old form will be removed in {removed_in}.",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def renamed_argument(old: str, new: str) -> Callable[[F], F]:
    """Accept the keyword ``old`` as a deprecated alias of ``new`` for one release.

    Args:
        old: the former keyword name (accepted by keyword only).
        new: the current keyword name; the decorated function must accept it.

    Returns:
        A decorator. The wrapped function warns with a ``DeprecationWarning`` naming both
        arguments when called with ``old``, and raises ``TypeError`` when called with both.

    Example:
        >>> @renamed_argument("seed", "random_state")
        ... def draw(*, random_state=None):
        ...     return random_state
        >>> draw(seed=3)  # DeprecationWarning: draw(): 'seed' is deprecated; use 'random_state'
        3
    """
    if old == new:
        raise ValueError(f"old and new must differ; got {old!r} twice")

    def decorate(func: F) -> F:
        name = _public_name(func)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(
                        f"{name}() got both {old!r} (deprecated) and {new!r}; pass only {new!r}"
                    )
                deprecation_warning(f"{name}(): {old!r} is deprecated; use {new!r}.")
                kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
