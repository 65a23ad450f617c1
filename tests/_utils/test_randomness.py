import numpy as np
import pytest
import torch

from mltricks._utils.randomness import numpy_generator, seed_from, torch_generator


def test_an_int_gives_the_same_draws_as_default_rng_and_a_generator_continues_its_stream():
    assert np.array_equal(numpy_generator(3).random(5), np.random.default_rng(3).random(5))
    assert np.array_equal(
        numpy_generator(np.int64(3)).random(5), np.random.default_rng(3).random(5)
    )
    shared = np.random.default_rng(0)
    assert numpy_generator(shared) is shared
    reference = np.random.default_rng(0)
    assert numpy_generator(shared).random() == reference.random()
    assert numpy_generator(shared).random() == reference.random()  # not restarted


def test_a_random_state_gives_a_generator_that_repeats_with_it_and_advances_it():
    first = numpy_generator(np.random.RandomState(1)).random(4)
    again = numpy_generator(np.random.RandomState(1)).random(4)
    assert np.array_equal(first, again)
    state = np.random.RandomState(1)
    one, two = numpy_generator(state).random(4), numpy_generator(state).random(4)
    assert not np.array_equal(one, two)


def test_none_draws_fresh_and_the_global_states_stay_untouched():
    np.random.seed(0)
    torch.manual_seed(0)
    numpy_before, torch_before = np.random.get_state()[1].copy(), torch.get_rng_state()
    draws = {float(numpy_generator(None).random()) for _ in range(5)}
    torch_draws = {float(torch.rand(1, generator=torch_generator(None))) for _ in range(5)}
    assert len(draws) == 5 and len(torch_draws) == 5
    numpy_generator(3).random(3)
    torch.rand(3, generator=torch_generator(3))
    assert np.array_equal(np.random.get_state()[1], numpy_before)
    assert torch.equal(torch.get_rng_state(), torch_before)


def test_torch_generator_seeds_like_manual_seed_and_passes_a_generator_through():
    expected = torch.rand(4, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.rand(4, generator=torch_generator(7)), expected)
    shared = torch.Generator().manual_seed(1)
    assert torch_generator(shared) is shared
    assert torch_generator(2, "cpu").device == torch.device("cpu")


def test_seed_from_keeps_ints_and_draws_one_seed_from_generators():
    assert seed_from(None) is None and seed_from(5) == 5 and seed_from(np.int32(5)) == 5
    numpy_seed = seed_from(np.random.default_rng(0))
    assert numpy_seed == seed_from(np.random.default_rng(0))  # a draw, repeatable
    assert numpy_seed == int(np.random.default_rng(0).integers(2**63 - 1))
    torch_seed = seed_from(torch.Generator().manual_seed(0))
    assert torch_seed == seed_from(torch.Generator().manual_seed(0))
    assert torch_seed != seed_from(torch.Generator().manual_seed(1))
    assert 0 <= seed_from(np.random.RandomState(0)) < 2**63


@pytest.mark.parametrize("convert", [numpy_generator, torch_generator, seed_from])
def test_bad_values_name_the_argument_and_what_is_allowed(convert):
    with pytest.raises(TypeError, match=r"random_state must be None, a non-negative int.*got True"):
        convert(True)
    with pytest.raises(TypeError, match=r"got 0\.5 of type float"):
        convert(0.5)
    with pytest.raises(ValueError, match=r"random_state must be .*\[0, 2\*\*63 - 1\]; got -1"):
        convert(-1)
    with pytest.raises(TypeError, match="seed must be"):
        convert("0", name="seed")


def test_numpy_code_refuses_a_torch_generator_and_torch_code_a_numpy_one():
    with pytest.raises(TypeError, match=r"np\.random\.Generator"):
        numpy_generator(torch.Generator())
    with pytest.raises(TypeError, match=r"torch\.Generator"):
        torch_generator(np.random.default_rng(0))
