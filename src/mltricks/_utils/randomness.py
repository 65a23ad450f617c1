"""The one randomness argument of the public API: ``random_state``, turned into a generator.

As in scikit-learn, ``random_state`` is an int (the same draws on every call), a generator (draws
continue its stream, so successive calls differ) or None (fresh, unpredictable draws). numpy code
accepts ``np.random.Generator`` and ``np.random.RandomState``; torch code accepts
``torch.Generator``. Neither helper ever touches the global random state.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import torch

NumpyRandomState: TypeAlias = int | np.random.Generator | np.random.RandomState | None
TorchRandomState: TypeAlias = int | torch.Generator | None

_MAX_SEED = 2**63 - 1


def _check_seed(value: Any, name: str, allowed: str) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be {allowed}; got {value!r} of type {type(value).__name__}")
    if not 0 <= value <= _MAX_SEED:
        raise ValueError(f"{name} must be {allowed}, an int in [0, 2**63 - 1]; got {value!r}")
    return int(value)


def numpy_generator(random_state: Any, *, name: str = "random_state") -> np.random.Generator:
    """A ``np.random.Generator`` from ``random_state``.

    An int seeds a new generator (``np.random.default_rng(seed)``, so results equal those of
    code that seeded ``default_rng`` itself); a ``Generator`` is returned as is; a
    ``RandomState`` (scikit-learn's kind) gives a generator seeded by one draw from it, so it
    advances; None gives a generator seeded from the operating system.

    Raises:
        TypeError: ``random_state`` is of another type (bools included).
        ValueError: an int outside ``[0, 2**63 - 1]``.
    """
    allowed = "None, a non-negative int, a np.random.Generator or a np.random.RandomState"
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(int(random_state.randint(0, 2**63 - 1, dtype=np.int64)))
    return np.random.default_rng(_check_seed(random_state, name, allowed))


def torch_generator(
    random_state: Any, device: torch.device | str = "cpu", *, name: str = "random_state"
) -> torch.Generator:
    """A ``torch.Generator`` from ``random_state``.

    An int seeds a new generator on ``device``; a ``torch.Generator`` is returned as is (it
    must live on the device of the tensors it draws); None gives a new generator seeded
    nondeterministically.

    Raises:
        TypeError: ``random_state`` is of another type (bools included).
        ValueError: an int outside ``[0, 2**63 - 1]``.
    """
    if isinstance(random_state, torch.Generator):
        return random_state
    generator = torch.Generator(device=device)
    if random_state is None:
        generator.seed()
        return generator
    seed = _check_seed(random_state, name, "None, a non-negative int or a torch.Generator")
    generator.manual_seed(seed)
    return generator


def seed_from(random_state: Any, *, name: str = "random_state") -> int | None:
    """An int seed from ``random_state``, for APIs that take only a seed.

    An int is returned (checked), None stays None, and a generator (numpy or torch) gives one
    draw from it, so it advances as if it had been used directly.

    Raises:
        TypeError: ``random_state`` is of another type (bools included).
        ValueError: an int outside ``[0, 2**63 - 1]``.
    """
    if random_state is None:
        return None
    if isinstance(random_state, torch.Generator):
        draw = torch.randint(_MAX_SEED, (), generator=random_state, device=random_state.device)
        return int(draw)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(_MAX_SEED))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, _MAX_SEED, dtype=np.int64))
    allowed = "None, a non-negative int, a numpy generator or a torch.Generator"
    return _check_seed(random_state, name, allowed)
