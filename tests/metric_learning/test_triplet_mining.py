import itertools

import pytest
import torch

from mltricks.metric_learning import (
    hard_triplets,
    mine_from_distances,
    pairwise_distances,
    semi_hard_triplets,
)


def _batch(seed=0, size=24, dim=3, classes=4):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(size, dim, generator=generator)
    labels = torch.randint(classes, (size,), generator=generator)
    labels[0] = 99  # a class of one sample: an anchor without positives
    return embeddings, labels


def _norm(a, b):
    return float(torch.linalg.vector_norm(a - b))


def _as_set(triplets):
    return set(zip(*(t.tolist() for t in triplets)))


def test_pairwise_distances_match_a_loop_also_far_from_the_origin():
    embeddings, _ = _batch(size=40)
    # without centring, the inner-product formula of cdist is off by ~0.5 at an offset of 1000
    for offset in (0.0, 1000.0):
        distances = pairwise_distances(embeddings + offset)
        for i, j in itertools.permutations(range(40), 2):
            assert float(distances[i, j]) == pytest.approx(
                _norm(embeddings[i], embeddings[j]), abs=2e-3
            )


def test_hard_triplets_match_a_brute_force_search():
    for seed in range(3):
        embeddings, labels = _batch(seed)
        expected = set()
        for a in range(len(labels)):
            positives = [p for p in range(len(labels)) if p != a and labels[p] == labels[a]]
            negatives = [n for n in range(len(labels)) if labels[n] != labels[a]]
            if not positives or not negatives:
                continue
            p = max(positives, key=lambda j: _norm(embeddings[a], embeddings[j]))
            n = min(negatives, key=lambda j: _norm(embeddings[a], embeddings[j]))
            expected.add((a, p, n))
        found = hard_triplets(embeddings, labels)
        assert all(t.dtype == torch.int64 for t in found)
        assert _as_set(found) == expected
        assert 0 not in found[0].tolist()  # the anchor without positives is skipped


def test_semi_hard_triplets_follow_the_definition():
    margin = 1.0
    embeddings, labels = _batch(seed=1, size=30, dim=2)
    expected = set()
    for a, p in itertools.permutations(range(len(labels)), 2):
        if labels[a] != labels[p]:
            continue
        d_ap = _norm(embeddings[a], embeddings[p])
        candidates = [
            n
            for n in range(len(labels))
            if labels[n] != labels[a] and d_ap < _norm(embeddings[a], embeddings[n]) < d_ap + margin
        ]
        if candidates:
            n = min(candidates, key=lambda j: _norm(embeddings[a], embeddings[j]))
            expected.add((a, p, n))
    found = semi_hard_triplets(embeddings, labels, margin=margin)
    assert expected and _as_set(found) == expected
    distances = pairwise_distances(embeddings)
    for a, p, n in _as_set(found):  # each triplet is semi-hard: active but not a hard negative
        assert distances[a, p] < distances[a, n] < distances[a, p] + margin
    # with no margin nothing is strictly inside it
    assert len(semi_hard_triplets(embeddings, labels, margin=0.0)[0]) == 0


def test_all_triplets_are_every_valid_triplet():
    embeddings, labels = _batch(seed=2, size=12)
    found = mine_from_distances(pairwise_distances(embeddings), labels, "all")
    expected = {
        (a, p, n)
        for a, p, n in itertools.product(range(12), repeat=3)
        if a != p and labels[a] == labels[p] and labels[n] != labels[a]
    }
    assert _as_set(found) == expected


def test_random_triplets_are_valid_one_per_anchor_and_cover_every_choice():
    embeddings, labels = _batch(seed=3, size=16, classes=2)
    distances = pairwise_distances(embeddings)
    generator = torch.Generator().manual_seed(0)
    positives_seen = set()
    for _ in range(200):
        a, p, n = mine_from_distances(distances, labels, "random", random_state=generator)
        assert len(set(a.tolist())) == len(a) == 15  # every anchor but the singleton, once
        assert (labels[a] == labels[p]).all() and (a != p).all()
        assert (labels[a] != labels[n]).all()
        positives_seen |= {(x, y) for x, y in zip(a.tolist(), p.tolist())}
    pairs = {(x, y) for x in range(16) for y in range(16) if x != y and labels[x] == labels[y]}
    assert positives_seen == pairs  # draws are spread over all positives, not a fixed pick


def test_mining_needs_no_gradient_and_keeps_the_input():
    embeddings, labels = _batch()
    embeddings.requires_grad_(True)
    before = embeddings.detach().clone()
    anchor, _, _ = hard_triplets(embeddings, labels)
    assert not anchor.requires_grad and torch.equal(embeddings.detach(), before)


@pytest.mark.parametrize(
    ("embeddings", "labels", "message"),
    [
        (torch.zeros(4, 2), torch.tensor([0, 1, 0]), "same length"),
        (torch.zeros(4, 2), torch.tensor([1, 1, 1, 1]), "at least two classes"),
        (torch.zeros(4), torch.tensor([0, 1, 0, 1]), r"\(B, D\)"),
        (torch.zeros(4, 2), torch.tensor([0.0, 1.0, 0.0, 1.0]), "integer"),
    ],
)
def test_bad_batches_are_refused_with_a_clear_error(embeddings, labels, message):
    with pytest.raises(ValueError, match=message):
        hard_triplets(embeddings, labels)


def test_bad_mining_and_margin_are_refused():
    embeddings, labels = _batch()
    with pytest.raises(ValueError, match="mining must be one of"):
        mine_from_distances(pairwise_distances(embeddings), labels, "hardest")
    with pytest.raises(ValueError, match=r"margin must be a number >= 0\.0; got -1"):
        semi_hard_triplets(embeddings, labels, margin=-1.0)
