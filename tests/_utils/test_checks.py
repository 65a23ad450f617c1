import json
import math

import pytest
import torch
from torch import nn

from mltricks._utils.checks import check_module, is_json_number
from mltricks.ensembles import MIMO, MCDropout
from mltricks.meta import adapt, reptile


def test_a_module_passes_and_anything_else_is_named_with_its_type():
    check_module("model", nn.Linear(2, 2))
    check_module("model", nn.Sequential())  # an empty container is a module too
    for value, kind in ((lambda x: x, "function"), ("model.pt", "str"), (None, "NoneType")):
        with pytest.raises(TypeError, match=rf"^model must be an nn\.Module; got {kind}$"):
            check_module("model", value)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: MIMO("resnet", feature_dim=4, num_classes=2, in_channels=1), "backbone"),
        (lambda: MCDropout(print), "model"),
        (
            lambda: reptile(
                None,
                [],
                meta_iterations=1,
                meta_batch_size=1,
                inner_steps=1,
                inner_lr=0.1,
                meta_lr=1.0,
            ),
            "model",
        ),
        (lambda: adapt("model", torch.zeros(1, 2), torch.zeros(1), steps=1, lr=0.1), "model"),
    ],
)
def test_the_techniques_that_take_a_model_name_the_argument_that_is_not_one(call, name):
    with pytest.raises(TypeError, match=rf"^{name} must be an nn\.Module; got "):
        call()


def test_json_numbers_are_what_a_float_holds_and_never_booleans():
    # the reference: what json.loads gives, and whether float() of it succeeds
    for text, expected in (
        ("0", True),
        ("-3.5", True),
        ("1e308", True),
        ("1e400", True),  # json reads it as inf: a float, printed as such
        ("1" + "0" * 400, False),  # an int no float holds
        ("true", False),
        ("null", False),
        ('"1.5"', False),
        ("[1]", False),
    ):
        value = json.loads(text)
        assert is_json_number(value) is expected, text
    assert is_json_number(math.nan)
