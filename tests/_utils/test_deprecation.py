import inspect
import warnings

import pytest

from mltricks._utils.deprecation import renamed_argument


@renamed_argument("seed", "random_state")
def _draw(size, *, random_state=None):
    return size, random_state


class _Sampler:
    @renamed_argument("seed", "random_state")
    def __init__(self, *, random_state=None):
        self.random_state = random_state


def test_the_old_name_warns_and_is_passed_on_under_the_new_one():
    with pytest.warns(
        DeprecationWarning,
        match=r"_draw\(\): 'seed' is deprecated; use 'random_state'\. Deprecated in 0\.2\.0; "
        r"the old form will be removed in 0\.3\.0\.$",
    ):
        assert _draw(3, seed=7) == (3, 7)
    with pytest.warns(DeprecationWarning, match=r"^_Sampler\(\): 'seed'") as caught:
        assert _Sampler(seed=5).random_state == 5
    # the warning points at the caller's line, not at the decorator
    assert caught[0].filename == __file__


def test_the_new_name_and_positional_arguments_pass_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _draw(2, random_state=1) == (2, 1)
        assert _draw(4) == (4, None)


def test_both_names_at_once_are_refused():
    with pytest.raises(TypeError, match=r"got both 'seed' .* and 'random_state'"):
        _draw(1, seed=1, random_state=2)


def test_the_signature_shows_only_the_new_name():
    assert list(inspect.signature(_draw).parameters) == ["size", "random_state"]
    assert list(inspect.signature(_Sampler).parameters) == ["random_state"]
    assert _draw.__name__ == "_draw"


def test_a_rename_to_the_same_name_is_a_mistake():
    with pytest.raises(ValueError, match="must differ"):
        renamed_argument("seed", "seed")
