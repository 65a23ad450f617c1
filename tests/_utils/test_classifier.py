import pytest
import torch
from torch import nn

from mltricks._utils.classifier import class_scores, logits_of
from mltricks.lab import engine
from mltricks.semi_supervised import semi_supervised_step


def test_a_tuple_or_list_output_counts_by_its_first_element():
    logits, embeddings = torch.randn(4, 3), torch.randn(4, 2)
    assert logits_of(logits) is logits
    assert logits_of((logits, embeddings)) is logits
    assert logits_of([logits, embeddings]) is logits
    assert logits_of(()) == ()  # nothing to read: the caller's type check names it
    # the one rule: the engine and the semi-supervised step read logits through it
    assert engine.logits_of is logits_of and semi_supervised_step.logits_of is logits_of


def test_class_scores_read_the_rule_and_check_the_shape():
    class Pair(nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :3], x

    x = torch.rand(5, 1, 2, 2)
    assert torch.equal(class_scores(Pair(), x), x.flatten(1)[:, :3])

    class Empty(nn.Module):
        def forward(self, x):
            return ()

    with pytest.raises(TypeError, match=r"model must return class scores.*got tuple"):
        class_scores(Empty(), x)
