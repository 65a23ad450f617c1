"""The strong simple baselines an experiment reports beside its technique.

A technique is worth using when it beats what a practitioner would try first on the same data
and labels, not only its own ablation. The one every image experiment shares is logistic
regression on the labelled images' pixels (scikit-learn's ``LogisticRegression``, standardised
pixels, L2, lbfgs): ``logistic_regression_accuracy``. Experiment-specific baselines (the same
network trained on the labelled images alone, a network trained on the whole training set) are
trained by the experiments themselves, with the lab's training helpers. For calibration the
first try is temperature scaling of the trained network (``fit_temperature``).

Example:
    >>> from mltricks.data import load_digits_images
    >>> x, y = load_digits_images(split="train")
    >>> x_test, y_test = load_digits_images(split="test")
    >>> round(logistic_regression_accuracy(x[:200], y[:200], x_test, y_test), 2) > 0.85
    True
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torchvision.ops import batched_nms, box_iou, roi_align

__all__ = [
    "fit_temperature",
    "logistic_regression",
    "logistic_regression_accuracy",
    "sliding_window_detector",
    "unigram_masked_lm",
]


def logistic_regression(*, C: float = 1.0, max_iter: int = 2000) -> Pipeline:
    """The lab's logistic-regression baseline: standardised pixels, then multinomial L2
    logistic regression (lbfgs). ``C`` is the inverse regularisation strength."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))


def logistic_regression_accuracy(
    images: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    test_images: torch.Tensor | np.ndarray,
    test_labels: torch.Tensor | np.ndarray,
    *,
    C: float = 1.0,
    max_iter: int = 2000,
) -> float:
    """Test accuracy of ``logistic_regression`` fitted on the labelled ``images`` (any shape
    ``(N, ...)``, flattened) and ``labels`` ``(N,)``.

    A fit that stops at ``max_iter`` before converging still counts (its accuracy is what a
    practitioner would get); the warning is not repeated.
    """
    x = _flat(images)
    x_test = _flat(test_images)
    y, y_test = np.asarray(labels).reshape(-1), np.asarray(test_labels).reshape(-1)
    if len(x) != len(y) or len(x_test) != len(y_test):
        raise ValueError(
            f"images and labels must have the same length; got {len(x)} and {len(y)} "
            f"(test: {len(x_test)} and {len(y_test)})"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = logistic_regression(C=C, max_iter=max_iter).fit(x, y)
    return float(model.score(x_test, y_test))


def fit_temperature(
    logits: torch.Tensor, labels: torch.Tensor, *, bounds: tuple[float, float] = (0.05, 20.0)
) -> float:
    """The temperature ``T`` that minimises the negative log-likelihood of
    ``softmax(logits / T)`` on held-out ``(logits, labels)``: temperature scaling (Guo et al.
    2017, <https://arxiv.org/abs/1706.04599>), a practitioner's first try to calibrate a
    trained network. It changes no prediction (the argmax of ``logits / T`` is that of
    ``logits``), only how confident they are: ``T > 1`` softens them.

    The NLL is convex in ``1 / T``, so a bounded scalar search over ``log T`` (SciPy's
    ``minimize_scalar``, in float64) finds its minimum in ``bounds``.

    Args:
        logits: ``(N, K)`` logits of the held-out samples (never the test set's).
        labels: ``(N,)`` class indices.
        bounds: the range searched, ``0 < low < high``.

    Returns:
        ``T``, a float in ``bounds``.

    Example:
        >>> logits = torch.tensor([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [0.0, 4.0]])
        >>> round(fit_temperature(logits, torch.tensor([0, 1, 1, 0])), 2)  # half right: T large
        20.0
    """
    low, high = bounds
    if not 0 < low < high:
        raise ValueError(f"bounds must be (low, high) with 0 < low < high; got {bounds}")
    z = torch.as_tensor(logits).detach().cpu().double()
    y = torch.as_tensor(labels).detach().cpu().long().reshape(-1)
    if z.ndim != 2 or len(z) != len(y) or len(y) == 0:
        raise ValueError(
            f"logits must be (N, K) and labels (N,) with N >= 1; got shapes "
            f"{tuple(z.shape)} and {tuple(y.shape)}"
        )
    result = minimize_scalar(
        lambda log_t: float(F.cross_entropy(z / math.exp(log_t), y)),
        bounds=(math.log(low), math.log(high)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(math.exp(result.x))


def unigram_masked_lm(
    train_ids: Iterable[Sequence[int]],
    labels: torch.Tensor,
    *,
    vocab_size: int,
    exclude: Sequence[int] = (),
    ignore_index: int = -100,
) -> dict[str, float]:
    """A masked language model's first baseline: the training texts' token frequencies.

    It predicts the most frequent training token at every masked position (accuracy) and scores
    each target by its add-one smoothed frequency (loss: mean negative log-likelihood per masked
    token in nats; perplexity: its exp). A masked LM that does not beat it has learned nothing
    from the context.

    Args:
        train_ids: token ids of each training text.
        labels: ``(N, L)`` evaluation labels: the original token at masked positions,
            ``ignore_index`` elsewhere (as transformers' collator writes them).
        vocab_size: number of token ids.
        exclude: ids that are never targets (special tokens): no count, no probability.
        ignore_index: the label of unmasked positions.

    Returns:
        ``{"accuracy", "loss", "perplexity"}`` over the masked positions.

    Example:
        >>> labels = torch.tensor([[-100, 2, 3, -100]])
        >>> scores = unigram_masked_lm([[0, 2, 2, 3, 1]], labels, vocab_size=4, exclude=(0, 1))
        >>> scores["accuracy"], round(scores["perplexity"], 4)  # p(2) = 3/5, p(3) = 2/5
        (0.5, 2.0412)
    """
    counts = np.zeros(vocab_size, dtype=np.float64)
    for ids in train_ids:
        np.add.at(counts, np.asarray(ids, dtype=np.int64), 1)
    support = np.ones(vocab_size, dtype=bool)
    support[list(exclude)] = False
    counts[~support] = 0
    if not support.any():
        raise ValueError(f"exclude leaves no token of the vocab_size={vocab_size} to predict")
    probabilities = np.where(support, counts + 1, 0) / (counts.sum() + support.sum())
    targets = np.asarray(labels).reshape(-1)
    targets = targets[targets != ignore_index]
    if len(targets) == 0:
        raise ValueError("labels hold no masked position (every label is ignore_index)")
    with np.errstate(divide="ignore"):  # an excluded target has probability 0: loss inf
        loss = float(-np.log(probabilities[targets]).mean())
    return {
        "accuracy": float(np.mean(targets == np.argmax(counts))),
        "loss": loss,
        "perplexity": math.exp(min(loss, 700.0)),
    }


def sliding_window_detector(
    train_images: Sequence[torch.Tensor],
    train_targets: Sequence[dict[str, torch.Tensor]],
    test_images: Sequence[torch.Tensor],
    *,
    window_sizes: Sequence[float],
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    stride: float = 4.0,
    crop_size: int = 12,
    negatives_per_image: int = 10,
    hard_negative_rounds: int = 1,
    max_mining_images: int = 300,
    random_state: int = 0,
    max_detections: int = 100,
) -> list[dict[str, torch.Tensor]]:
    """A detector's simple baseline: ``logistic_regression`` on window pixels, slid over the
    image (the classic sliding-window detector, before region proposals).

    Training crops every ground-truth box (and two jittered copies, IoU >= 0.6 with it) as its
    class and ``negatives_per_image`` random windows with IoU < 0.3 with every box as
    background (class 0), each resized to ``crop_size`` squared by ``roi_align``. Detection scores
    every window of a grid (``window_sizes`` are the sides of squares of the same area, shaped
    by ``aspect_ratios`` = height / width, moved by ``stride`` pixels), keeps each object
    class's probability as a detection of that class, and suppresses overlaps per class (NMS at
    IoU 0.3), as a torchvision detector's post-processing does.

    Args:
        train_images: per image ``(C, H, W)`` in [0, 1] (sizes may differ).
        train_targets: per image ``{"boxes": (n, 4) x1 y1 x2 y2, "labels": (n,) from 1}``.
        test_images: the images to detect in.
        window_sizes: window sides in pixels (the objects' sizes).
        aspect_ratios: window height / width ratios.
        stride: step between windows in pixels.
        crop_size: side of the resized crops the classifier sees.
        negatives_per_image: background windows drawn per training image, and added per
            image in each round of hard-negative mining.
        hard_negative_rounds: rounds of hard-negative mining: the background windows of the
            training images that the fitted model scores least as background are added, and
            it is fitted again (Dalal and Triggs 2005).
        max_mining_images: the first training images searched for hard negatives (scoring
            every window of every image costs more than the fit).
        random_state: seed of the negatives and the jitter.
        max_detections: highest-scoring detections kept per image.

    Returns:
        per test image ``{"boxes": (n, 4), "scores": (n,), "labels": (n,)}``, the format of
        ``mltricks.detection.mean_average_precision``.

    Example:
        >>> image = torch.zeros(1, 24, 24)
        >>> image[:, 4:12, 8:16] = 1.0
        >>> target = {"boxes": torch.tensor([[8.0, 4, 16, 12]]), "labels": torch.tensor([1])}
        >>> found = sliding_window_detector([image] * 4, [target] * 4, [image], window_sizes=(8,))
        >>> found[0]["boxes"][0].tolist(), int(found[0]["labels"][0])
        ([8.0, 4.0, 16.0, 12.0], 1)
    """
    if not window_sizes or min(window_sizes) <= 0 or not aspect_ratios or min(aspect_ratios) <= 0:
        raise ValueError(
            f"window_sizes and aspect_ratios must be non-empty and positive; got "
            f"{tuple(window_sizes)} and {tuple(aspect_ratios)}"
        )
    if stride <= 0 or crop_size < 1:
        raise ValueError(f"stride must be > 0 and crop_size >= 1; got {stride} and {crop_size}")
    rng = np.random.default_rng(random_state)
    shapes = [
        (size / math.sqrt(ratio), size * math.sqrt(ratio))  # (width, height)
        for size in window_sizes
        for ratio in aspect_ratios
    ]
    crops, labels = [], []
    for image, target in zip(train_images, train_targets):
        boxes, classes = target["boxes"].float(), target["labels"]
        windows = _random_windows(rng, image.shape[-2:], shapes, 4 * negatives_per_image)
        if len(boxes):
            windows = windows[box_iou(windows, boxes).amax(1) < 0.3]
            jittered = torch.cat([_jitter(rng, boxes), _jitter(rng, boxes)])
            similar = box_iou(jittered, boxes.repeat(2, 1)).diagonal() >= 0.6
            boxes = torch.cat([boxes, jittered[similar]])
            classes = torch.cat([classes, classes.repeat(2)[similar]])
        windows = windows[:negatives_per_image]
        crops.append(_crops(image, torch.cat([boxes, windows]), crop_size))
        labels.append(torch.cat([classes, torch.zeros(len(windows), dtype=classes.dtype)]))
    model = _fit(crops, labels)
    for _ in range(hard_negative_rounds):
        # the classic detector's second pass: the background windows it scores highest
        for image, target in zip(train_images[:max_mining_images], train_targets):
            windows = _grid_windows(image.shape[-2:], shapes, stride)
            if len(target["boxes"]):
                windows = windows[box_iou(windows, target["boxes"].float()).amax(1) < 0.3]
            if len(windows) == 0:  # no window fits this image
                continue
            features = _crops(image, windows, crop_size)
            background = model.predict_proba(features.numpy())[:, list(model.classes_).index(0)]
            hardest = torch.from_numpy(np.argsort(background)[:negatives_per_image])
            crops.append(features[hardest])
            labels.append(torch.zeros(len(hardest), dtype=torch.int64))
        model = _fit(crops, labels)
    object_classes = [(column, int(c)) for column, c in enumerate(model.classes_) if c >= 1]
    detections = []
    for image in test_images:
        windows = _grid_windows(image.shape[-2:], shapes, stride)
        if len(windows) == 0:
            windows = torch.tensor([[0.0, 0.0, image.shape[-1], image.shape[-2]]])
        probabilities = torch.from_numpy(
            model.predict_proba(_crops(image, windows, crop_size).numpy())
        ).float()
        boxes = windows.repeat(len(object_classes), 1)
        scores = torch.cat([probabilities[:, column] for column, _ in object_classes])
        classes = torch.cat(
            [torch.full((len(windows),), c, dtype=torch.int64) for _, c in object_classes]
        )
        keep = batched_nms(boxes, scores, classes, 0.3)[:max_detections]
        detections.append({"boxes": boxes[keep], "scores": scores[keep], "labels": classes[keep]})
    return detections


def _fit(crops: list[torch.Tensor], labels: list[torch.Tensor]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return logistic_regression().fit(torch.cat(crops).numpy(), torch.cat(labels).numpy())


def _crops(image: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """``(len(boxes), C * size * size)``: each box of ``image`` resized to ``size`` squared."""
    if len(boxes) == 0:
        return torch.zeros(0, image.shape[0] * size * size)
    # one bilinear sample per output pixel: 4x faster than roi_align's adaptive sampling on
    # thousands of windows per image, and the classifier's score barely moves
    crops = roi_align(
        image[None].float(), [boxes.float()], output_size=size, sampling_ratio=1, aligned=True
    )
    return crops.flatten(1)


def _grid_windows(
    image_size: Sequence[int], shapes: Sequence[tuple[float, float]], stride: float
) -> torch.Tensor:
    """Every window of every shape ``(width, height)`` that fits, ``stride`` apart: ``(n, 4)``."""
    height, width = int(image_size[0]), int(image_size[1])
    windows = []
    for w, h in shapes:
        if w > width or h > height:
            continue
        xs = torch.arange(0.0, width - w + 1e-6, stride)
        ys = torch.arange(0.0, height - h + 1e-6, stride)
        y, x = torch.meshgrid(ys, xs, indexing="ij")
        corners = torch.stack([x.flatten(), y.flatten()], 1)
        windows.append(torch.cat([corners, corners + torch.tensor([w, h])], 1).float())
    return torch.cat(windows) if windows else torch.zeros(0, 4)


def _random_windows(
    rng: np.random.Generator,
    image_size: Sequence[int],
    shapes: Sequence[tuple[float, float]],
    count: int,
) -> torch.Tensor:
    """``count`` windows of random shapes among ``shapes`` at random places inside the image."""
    height, width = int(image_size[0]), int(image_size[1])
    fits = [(w, h) for w, h in shapes if w <= width and h <= height] or [(width, height)]
    sizes = np.array(fits)[rng.integers(len(fits), size=count)]  # (count, 2)
    corners = rng.uniform(0, 1, size=(count, 2)) * (np.array([width, height]) - sizes)
    return torch.from_numpy(np.concatenate([corners, corners + sizes], 1)).float()


def _jitter(rng: np.random.Generator, boxes: torch.Tensor) -> torch.Tensor:
    """``boxes`` shifted by up to 15% of their size and rescaled by up to 10%."""
    size = boxes[:, 2:] - boxes[:, :2]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    shift = torch.from_numpy(rng.uniform(-0.15, 0.15, size=size.shape)).float() * size
    scale = torch.from_numpy(rng.uniform(0.9, 1.1, size=size.shape)).float()
    half = size * scale / 2
    return torch.cat([centre + shift - half, centre + shift + half], 1)


def _flat(images: torch.Tensor | np.ndarray) -> np.ndarray:
    array = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else images
    array = np.asarray(array, dtype=np.float64)
    return array.reshape(len(array), -1)
