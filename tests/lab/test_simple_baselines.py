"""The strong simple baselines of lr-range-test, bert-mlm, faster-rcnn, saliency and
positional-encoding, against references (a counting loop, a formula, a degenerate scene)."""

import math
from collections import Counter

import pytest
import torch

from mltricks.detection import mean_average_precision
from mltricks.encodings import sinusoidal_positional_encoding
from mltricks.lab.baselines import sliding_window_detector, unigram_masked_lm
from mltricks.lab.experiments import lr_range_test, positional_encoding, saliency


def test_unigram_masked_lm_matches_a_counting_loop():
    generator = torch.Generator().manual_seed(0)
    vocab_size, special = 12, (0, 1, 2)
    train = [
        torch.randint(3, vocab_size, (int(n),), generator=generator).tolist() for n in (5, 9, 7)
    ]
    train = [[0, *ids, 1] for ids in train]  # special tokens around each text, as a tokenizer does
    labels = torch.full((4, 6), -100)
    labels[torch.rand(4, 6, generator=generator) < 0.5] = 7
    labels[0, 0], labels[1, 1] = 3, 11

    counts = Counter(token for ids in train for token in ids if token not in special)
    total, support = sum(counts.values()), vocab_size - len(special)
    targets = [int(t) for t in labels.flatten() if t != -100]
    expected_loss = sum(-math.log((counts[t] + 1) / (total + support)) for t in targets)
    expected_loss /= len(targets)
    most_frequent = max(sorted(counts), key=lambda token: counts[token])

    scores = unigram_masked_lm(train, labels, vocab_size=vocab_size, exclude=special)
    assert scores["loss"] == pytest.approx(expected_loss)
    assert scores["perplexity"] == pytest.approx(math.exp(expected_loss))
    assert scores["accuracy"] == pytest.approx(targets.count(most_frequent) / len(targets))


def test_unigram_masked_lm_refuses_labels_without_a_masked_position():
    with pytest.raises(ValueError, match="no masked position"):
        unigram_masked_lm([[3, 4]], torch.full((1, 3), -100), vocab_size=5)


def _square_scenes(count: int, seed: int) -> tuple[list[torch.Tensor], list[dict]]:
    """Dark 32 x 32 RGB canvases with a red 8 x 8 square (class 1) or a blue 12 x 6 bar
    (class 2)."""
    generator = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for i in range(count):
        image = torch.zeros(3, 32, 32)
        label = 1 + i % 2
        width, height = (8, 8) if label == 1 else (12, 6)
        x, y = (int(v) for v in torch.randint(0, 32 - 12, (2,), generator=generator))
        image[0 if label == 1 else 2, y : y + height, x : x + width] = 1.0
        images.append(image)
        targets.append(
            {
                "boxes": torch.tensor([[x, y, x + width, y + height]], dtype=torch.float32),
                "labels": torch.tensor([label]),
            }
        )
    return images, targets


def test_sliding_window_detector_finds_plain_objects_on_a_dark_canvas():
    train_images, train_targets = _square_scenes(16, seed=0)
    test_images, test_targets = _square_scenes(6, seed=1)
    detections = sliding_window_detector(
        train_images, train_targets, test_images, window_sizes=(8,), stride=2, random_state=0
    )
    assert all(d["boxes"].shape[1] == 4 and len(d["boxes"]) <= 100 for d in detections)
    assert float(mean_average_precision(detections, test_targets)["map_50"]) >= 0.9


def test_sliding_window_detector_names_a_bad_window_size():
    images, targets = _square_scenes(2, seed=0)
    with pytest.raises(ValueError, match="window_sizes"):
        sliding_window_detector(images, targets, images, window_sizes=(0,))


def test_centre_box_is_the_mean_training_box_size_at_the_canvas_centre():
    boxes = torch.tensor([[0.0, 0, 10, 10], [10, 10, 30, 20]])  # sizes (10, 10) and (20, 10)
    assert saliency.centre_box(boxes, 32).tolist() == [8.5, 11.0, 23.5, 21.0]


def test_a_random_table_of_the_same_norm_lacks_the_shift_rotation():
    num_positions, dim = 80, 16
    table = positional_encoding.random_table(num_positions, dim, random_state=0)
    assert torch.allclose(
        table.norm(dim=1), torch.full((num_positions,), math.sqrt(dim / 2), dtype=table.dtype)
    )
    encoding = sinusoidal_positional_encoding(num_positions, dim, dtype=torch.float64)
    assert positional_encoding.rotation_error(encoding, 3) < 1e-9
    assert positional_encoding.rotation_error(table, 3) > 0.1


def test_the_default_learning_rate_is_read_from_the_candidates_without_training():
    cfg = lr_range_test.Config(lrs=(1e-4, 1e-3, 1e-2), default_lr=1e-3)
    # no problem to train on: a lookup that trained would fail
    assert lr_range_test._default_val_loss(cfg, None, [0.9, 0.4, 0.7], seed=0) == 0.4
