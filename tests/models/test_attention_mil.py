import pytest
import torch
from torch import nn

from mltricks.data import pad_bags
from mltricks.models import AttentionMIL, PoolingMIL, SmallCNN, attention_pool


def _extractor():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.BatchNorm1d(6), nn.ReLU())


def _models():
    torch.manual_seed(1)
    return [
        AttentionMIL(_extractor(), 6, hidden_dim=5),
        AttentionMIL(_extractor(), 6, hidden_dim=5, gated=True),
        PoolingMIL(_extractor(), 6, pooling="mean"),
        PoolingMIL(_extractor(), 6, pooling="max"),
    ]


def _bags(sizes=(3, 1, 5, 2)):
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(size, 3, 4, generator=generator) for size in sizes]


@pytest.mark.parametrize("model", _models(), ids=["attention", "gated", "mean", "max"])
def test_padded_batch_equals_bags_one_at_a_time(model):
    model.eval()
    bags = _bags()
    padded, mask = pad_bags(bags, padding_value=float("nan"))  # padding never reaches the model
    logits, weights = model(padded, mask)
    assert logits.shape == (4,) and weights.shape == mask.shape
    for i, bag in enumerate(bags):
        logit, weight = model(bag)
        assert logit.shape == () and weight.shape == (len(bag),)
        torch.testing.assert_close(logits[i], logit, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(weights[i, : len(bag)], weight, rtol=1e-5, atol=1e-6)
    # weights sum to 1 over the real instances and are exactly 0 on padding
    torch.testing.assert_close(weights.sum(1), torch.ones(4))
    assert bool((weights[~mask] == 0).all()) and bool((weights[mask] >= 0).all())


@pytest.mark.parametrize("gated", [False, True])
def test_attention_follows_the_formula_of_ilse_et_al(gated):
    model = AttentionMIL(_extractor(), 6, hidden_dim=5, gated=gated).eval()
    bag = _bags((4,))[0]
    logit, attention = model(bag)
    h = model.feature_extractor(bag)  # (N, D)
    hidden = torch.tanh(h @ model.attention_v.weight.T + model.attention_v.bias)
    if gated:
        hidden = hidden * torch.sigmoid(h @ model.attention_u.weight.T + model.attention_u.bias)
    scores = hidden @ model.attention_w.weight.flatten() + model.attention_w.bias
    expected = torch.exp(scores) / torch.exp(scores).sum()
    torch.testing.assert_close(attention, expected)
    pooled = (expected[:, None] * h).sum(0)
    torch.testing.assert_close(
        logit, model.classifier.weight.flatten() @ pooled + model.classifier.bias[0]
    )
    # permuting the instances permutes the attention and keeps the logit
    order = torch.tensor([2, 0, 3, 1])
    logit_perm, attention_perm = model(bag[order])
    torch.testing.assert_close(logit_perm, logit)
    torch.testing.assert_close(attention_perm, attention[order])


def test_mean_and_max_pooling_weights():
    mean_model, max_model = _models()[2:]
    bag = _bags((5,))[0]
    _, uniform = mean_model.eval()(bag)
    torch.testing.assert_close(uniform, torch.full((5,), 0.2))
    max_model.eval()
    _, shares = max_model(bag)
    features = max_model.feature_extractor(bag)
    winners = features.argmax(0)  # which instance holds each dimension's maximum
    torch.testing.assert_close(shares, torch.bincount(winners, minlength=5).float() / 6)
    logit, _ = max_model(bag)
    expected = max_model.classifier(features.max(0).values)[0]
    torch.testing.assert_close(logit, expected)


def test_attention_pool_matches_masked_softmax():
    features = torch.randn(2, 3, 4)
    scores = torch.randn(2, 3)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    pooled, attention = attention_pool(features, scores, mask)
    first = torch.softmax(scores[0, :2], 0)
    torch.testing.assert_close(attention[0], torch.cat([first, torch.zeros(1)]))
    torch.testing.assert_close(pooled[0], first @ features[0, :2])


def test_works_with_a_small_cnn_and_trains():
    cnn = SmallCNN(1, 2, width=4)
    model = AttentionMIL(cnn.features, cnn.feature_dim, hidden_dim=8, gated=True)
    padded, mask = pad_bags([torch.rand(3, 1, 8, 8), torch.rand(5, 1, 8, 8)])
    logits, attention = model(padded, mask)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([0.0, 1.0]))
    loss.backward()
    assert torch.isfinite(logits).all() and attention.shape == (2, 5)
    assert all(p.grad is not None for p in model.parameters())


def test_bad_input_gives_clear_errors():
    model = _models()[0]
    with pytest.raises(ValueError, match="N >= 1 instances"):
        model(torch.zeros(0, 3, 4))
    padded, mask = pad_bags(_bags((2, 3)))
    mask[1] = False
    with pytest.raises(ValueError, match=r"bags must not be empty; bags \[1\]"):
        model(padded, mask)
    with pytest.raises(ValueError, match="mask must be a bool tensor of shape"):
        model(padded, mask.float())
    with pytest.raises(ValueError, match="feature_dim=7"):
        AttentionMIL(_extractor(), 7)(padded[0])
    with pytest.raises(ValueError, match="pooling must be one of"):
        PoolingMIL(_extractor(), 6, pooling="sum")
