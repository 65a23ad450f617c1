"""Few-shot classification tasks: N-way K-shot episodes drawn from a labelled image set.

A task picks ``ways`` classes, relabels them ``0..ways-1`` in a random order, and draws
``shots`` support and ``queries`` query images of each, all distinct. Meta-learning needs two
disjoint pools of classes: meta-train tasks come from one, meta-test tasks from the other, so a
meta-test task asks for classes never seen in meta-training. ``split_classes`` makes that split
(keeping groups, such as the four rotations of one digit, on one side when asked), and
``rotate_classes`` turns every rotation of a class into a class of its own, as is done for
Omniglot (Santoro et al. 2016, Vinyals et al. 2016): the ten digits give forty classes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch

from mltricks._utils.checks import check_number
from mltricks._utils.deprecation import renamed_argument
from mltricks._utils.randomness import NumpyRandomState, numpy_generator

ANGLES = (0, 90, 180, 270)


class Task(NamedTuple):
    """One N-way K-shot task.

    Attributes:
        support_x: ``(ways * shots, ...)`` support images, class by class.
        support_y: ``(ways * shots,)`` int64 task labels in ``0..ways-1``.
        query_x: ``(ways * queries, ...)`` query images, class by class.
        query_y: ``(ways * queries,)`` int64 task labels.
        classes: ``(ways,)`` int64: ``classes[k]`` is the original class of task label ``k``.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    classes: torch.Tensor


def rotate_classes(
    images: torch.Tensor, labels: torch.Tensor, *, angles: Sequence[int] = ANGLES
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rotation of every class becomes a new class.

    Class ``c`` rotated by ``angles[r]`` (counter-clockwise) gets the id ``r * num_base + c``,
    with ``num_base = labels.max() + 1``; so ``new_label % num_base`` is the original class and
    ``new_label // num_base`` the rotation index.

    Args:
        images: ``(N, C, H, W)`` square images.
        labels: ``(N,)`` int class ids from 0.
        angles: multiples of 90 degrees, distinct; ``(0, 90, 180, 270)`` by default.

    Returns:
        images ``(len(angles) * N, C, H, W)`` and labels ``(len(angles) * N,)``, rotation by
        rotation.

    Example:
        >>> images, labels = rotate_classes(torch.zeros(10, 1, 8, 8), torch.arange(10))
        >>> images.shape, int(labels.max()) + 1
        (torch.Size([40, 1, 8, 8]), 40)
    """
    images, labels = _check_images_labels(images, labels)
    if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"images must be square (N, C, H, H); got shape {tuple(images.shape)}")
    angles = tuple(angles)
    if not angles or len(set(angles)) != len(angles) or any(a % 90 for a in angles):
        raise ValueError(f"angles must be distinct multiples of 90 degrees; got {angles}")
    if int(labels.min()) < 0:
        raise ValueError(f"labels must be class ids >= 0; got a minimum of {int(labels.min())}")
    num_base = int(labels.max()) + 1
    rotated = [torch.rot90(images, k=(a // 90) % 4, dims=(-2, -1)) for a in angles]
    new_labels = [labels + r * num_base for r in range(len(angles))]
    return torch.cat(rotated), torch.cat(new_labels)


@renamed_argument("seed", "random_state")
def split_classes(
    classes: Sequence[int],
    *,
    num_test: int,
    random_state: NumpyRandomState = None,
    groups: Sequence[int] | None = None,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Split class ids into disjoint meta-train and meta-test classes, at random.

    Args:
        classes: the class ids to split (distinct).
        num_test: classes on the meta-test side; with ``groups``, groups on the meta-test side.
        random_state: seed of the random choice: an int, a numpy ``Generator``/``RandomState``
            or None (``seed=`` is a deprecated alias).
        groups: optional group of each class (``classes[i]`` belongs to ``groups[i]``): all classes
            of a group land on the same side, e.g. the four rotations of one digit.

    Returns:
        ``(train_classes, test_classes)``, each sorted, disjoint, together all of ``classes``.

    Example:
        >>> digit = [c % 10 for c in range(40)]  # the digit of each rotated class
        >>> split_classes(range(40), num_test=3, groups=digit, random_state=0)[1]
        (5, 6, 9, 15, 16, 19, 25, 26, 29, 35, 36, 39)
    """
    classes = [int(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct; got {classes}")
    group_ids = classes if groups is None else [int(g) for g in groups]
    if len(group_ids) != len(classes):
        raise ValueError(
            f"groups must give one group per class: {len(group_ids)} groups for "
            f"{len(classes)} classes"
        )
    unique_groups = sorted(set(group_ids))
    check_number("num_test", num_test, low=1, high=len(unique_groups) - 1, integer=True)
    rng = numpy_generator(random_state)
    test_groups = set(rng.choice(unique_groups, size=num_test, replace=False).tolist())
    test = tuple(sorted(c for c, g in zip(classes, group_ids) if g in test_groups))
    train = tuple(sorted(c for c, g in zip(classes, group_ids) if g not in test_groups))
    return train, test


class FewShotTasks:
    """An endless, seeded source of N-way K-shot tasks from the images of ``classes``.

    Iterating yields a fresh task each time (``reptile`` draws its meta-batches this way);
    ``sample(num_tasks)`` returns a fixed list, e.g. the meta-test tasks. The same arguments and
    an int ``random_state`` give the same tasks.

    Args:
        images: ``(N, ...)`` images.
        labels: ``(N,)`` int class ids.
        ways: classes per task (at least 2, at most ``len(classes)``).
        shots: support images per class (at least 1).
        queries: query images per class (0 for meta-training tasks that need none).
        classes: the class ids tasks draw from; all classes in ``labels`` when None.
        random_state: seed of the task stream: an int, a numpy ``Generator``/``RandomState``
            (whose stream the tasks then continue) or None (``seed=`` is a deprecated alias).

    Example:
        >>> from mltricks.data import FewShotTasks, load_digits_images, rotate_classes
        >>> images, labels = rotate_classes(*load_digits_images())
        >>> tasks = FewShotTasks(images, labels, ways=5, shots=1, queries=15, random_state=0)
        >>> task = next(iter(tasks))
        >>> task.support_x.shape, task.query_y.shape
        (torch.Size([5, 1, 8, 8]), torch.Size([75]))
    """

    @renamed_argument("seed", "random_state")
    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        ways: int,
        shots: int,
        queries: int,
        classes: Sequence[int] | None = None,
        random_state: NumpyRandomState = None,
    ) -> None:
        self.images, self.labels = _check_images_labels(images, labels)
        check_number("ways", ways, low=2, integer=True)
        check_number("shots", shots, low=1, integer=True)
        check_number("queries", queries, low=0, integer=True)
        present = sorted(set(self.labels.tolist()))
        chosen = present if classes is None else [int(c) for c in classes]
        missing = sorted(set(chosen) - set(present))
        if missing:
            raise ValueError(f"classes {missing} do not occur in labels; present: {present}")
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"classes must be distinct; got {chosen}")
        if ways > len(chosen):
            raise ValueError(
                f"ways={ways} is more than the {len(chosen)} classes tasks can draw from "
                f"({chosen}); use ways <= {len(chosen)}"
            )
        self.members = {c: torch.nonzero(self.labels == c).flatten() for c in chosen}
        fewest = min(self.members, key=lambda c: len(self.members[c]))
        if shots + queries > len(self.members[fewest]):
            raise ValueError(
                f"shots + queries = {shots} + {queries} images per class, but class {fewest} "
                f"has only {len(self.members[fewest])}; use shots + queries <= "
                f"{len(self.members[fewest])}"
            )
        self.ways, self.shots, self.queries = ways, shots, queries
        self.classes = tuple(chosen)
        self._rng = numpy_generator(random_state)

    def __iter__(self) -> Iterator[Task]:
        while True:
            yield self._draw()

    def sample(self, num_tasks: int) -> list[Task]:
        """The next ``num_tasks`` tasks of the stream, as a list."""
        check_number("num_tasks", num_tasks, low=1, integer=True)
        return [self._draw() for _ in range(num_tasks)]

    def _draw(self) -> Task:
        rng = self._rng
        picked = rng.choice(len(self.classes), size=self.ways, replace=False)
        classes = [self.classes[i] for i in picked]
        per_class = self.shots + self.queries
        support, query = [], []
        for cls in classes:
            members = self.members[cls]
            chosen = members[torch.from_numpy(rng.choice(len(members), per_class, replace=False))]
            support.append(chosen[: self.shots])
            query.append(chosen[self.shots :])
        support_idx, query_idx = torch.cat(support), torch.cat(query)
        task_labels = torch.arange(self.ways)
        return Task(
            support_x=self.images[support_idx],
            support_y=task_labels.repeat_interleave(self.shots),
            query_x=self.images[query_idx],
            query_y=task_labels.repeat_interleave(self.queries),
            classes=torch.tensor(classes, dtype=torch.int64),
        )


def _check_images_labels(
    images: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = torch.as_tensor(images), torch.as_tensor(labels)
    if labels.ndim != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(
            f"labels must be a 1-d integer tensor; got shape {tuple(labels.shape)} and "
            f"dtype {labels.dtype}"
        )
    if images.ndim < 2 or len(images) != len(labels) or len(labels) == 0:
        raise ValueError(
            f"images (N, ...) and labels (N,) must hold the same N > 0 samples; got shapes "
            f"{tuple(images.shape)} and {tuple(labels.shape)}"
        )
    return images, labels.long()
