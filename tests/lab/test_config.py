from dataclasses import dataclass
from typing import Literal

import pytest

from smallml.lab.config import ConfigError, apply_overrides


@dataclass
class Config:
    epochs: int = 1
    lr: float = 0.1
    name: str = "x"
    flag: bool = False
    lrs: tuple[float, ...] = (0.1,)
    sizes: list[int] | None = None
    mode: Literal["hard", "random"] = "hard"
    limit: int | None = None


def test_typed_overrides():
    cfg = apply_overrides(
        Config(),
        [
            "epochs=3",
            "lr=1e-3",
            "name=a=b",
            "flag=yes",
            "lrs=0.1,0.2",
            "sizes=1,2",
            "mode=random",
            "limit=none",
        ],
    )
    assert cfg == Config(3, 1e-3, "a=b", True, (0.1, 0.2), [1, 2], "random", None)
    assert apply_overrides(Config(), ["limit=5"]).limit == 5


@pytest.mark.parametrize(
    ("assignment", "match"),
    [
        ("epochs=abc", "expected int"),
        ("flag=maybe", "expected bool"),
        ("mode=soft", "'hard' | 'random'"),
        ("lrs=a,b", "comma-separated floats"),
        ("nope=1", "unknown key"),
        ("epochs", "key=value"),
    ],
)
def test_bad_overrides(assignment, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(Config(), [assignment])
