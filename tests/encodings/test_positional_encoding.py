import math

import pytest
import torch

from mltricks.encodings import SinusoidalPositionalEncoding, sinusoidal_positional_encoding


def test_formula_against_an_explicit_loop():
    positions, dim, base = 7, 10, 100.0
    pe = sinusoidal_positional_encoding(positions, dim, base, dtype=torch.float64)
    for p in range(positions):
        for j in range(dim):
            angle = p / base ** (2 * (j // 2) / dim)
            expected = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert pe[p, j].item() == pytest.approx(expected, abs=1e-12)


def test_every_row_has_norm_sqrt_half_dim():
    pe = sinusoidal_positional_encoding(200, 64, dtype=torch.float64)
    assert torch.allclose(pe.norm(dim=1), torch.full((200,), math.sqrt(32), dtype=torch.float64))


def test_shift_is_one_fixed_rotation_for_every_position():
    dim, base = 16, 10000.0
    pe = sinusoidal_positional_encoding(300, dim, base, dtype=torch.float64)
    for shift in (1, 5, 37):
        # build R_k from the frequencies alone and apply it to every position
        rotation = torch.zeros(dim, dim, dtype=torch.float64)
        for i in range(dim // 2):
            angle = shift / base ** (2 * i / dim)
            c, s = math.cos(angle), math.sin(angle)
            # [sin(a+b), cos(a+b)] = [[c, s], [-s, c]] [sin a, cos a]
            rotation[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor(
                [[c, s], [-s, c]], dtype=torch.float64
            )
        assert torch.allclose(pe[:-shift] @ rotation.T, pe[shift:], atol=1e-10)
        dots = (pe[:-shift] * pe[shift:]).sum(1)
        assert torch.allclose(dots, dots[0].expand_as(dots), atol=1e-10)


def test_module_twin_adds_the_table():
    layer = SinusoidalPositionalEncoding(dim=8, max_positions=10)
    x = torch.randn(2, 6, 8)
    assert torch.allclose(layer(x), x + sinusoidal_positional_encoding(6, 8))
    assert "encoding" not in layer.state_dict()
    with pytest.raises(ValueError, match="max_positions"):
        layer(torch.zeros(1, 11, 8))
    with pytest.raises(ValueError, match="dim"):
        layer(torch.zeros(1, 3, 4))


@pytest.mark.parametrize(
    ("args", "match"), [((4, 7), "even"), ((0, 8), "num_positions"), ((4, 8, 1.0), "base")]
)
def test_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        sinusoidal_positional_encoding(*args)
