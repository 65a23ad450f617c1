import numpy as np
import pytest
import torch

from mltricks.data import FewShotTasks, load_digits_images, rotate_classes, split_classes


def _numbered(num_classes=6, per_class=8):
    """Images whose single pixel is their index, so a task's images can be traced back."""
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    images = torch.arange(len(labels), dtype=torch.float32).view(-1, 1, 1, 1)
    return images, labels


def _indices(x):
    return x.flatten().long().tolist()


def test_rotations_make_new_classes():
    images, labels = load_digits_images()
    rotated, new_labels = rotate_classes(images, labels)
    assert rotated.shape == (4 * len(images), 1, 8, 8)
    assert sorted(set(new_labels.tolist())) == list(range(40))
    n = len(images)
    assert torch.equal(rotated[:n], images) and torch.equal(new_labels[:n], labels)
    # class c rotated by 90 degrees (counter-clockwise) is class 10 + c
    assert torch.equal(rotated[n : 2 * n], torch.rot90(images, 1, dims=(2, 3)))
    assert torch.equal(new_labels[n : 2 * n], labels + 10)
    square = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    turned, _ = rotate_classes(square, torch.tensor([0]), angles=(90, 270))
    assert turned.flatten(1).tolist() == [[2.0, 4.0, 1.0, 3.0], [3.0, 1.0, 4.0, 2.0]]
    assert torch.equal(new_labels % 10, labels.repeat(4))


def test_rotation_bad_input():
    images, labels = torch.zeros(4, 1, 8, 8), torch.arange(4)
    with pytest.raises(ValueError, match="multiples of 90"):
        rotate_classes(images, labels, angles=(0, 45))
    with pytest.raises(ValueError, match="square"):
        rotate_classes(torch.zeros(4, 1, 8, 6), labels)
    with pytest.raises(ValueError, match="same N"):
        rotate_classes(images, torch.arange(3))


def test_tasks_follow_their_definition():
    images, labels = _numbered()
    tasks = FewShotTasks(images, labels, ways=3, shots=2, queries=4, random_state=0)
    for task in tasks.sample(20):
        assert task.support_x.shape == (6, 1, 1, 1) and task.query_x.shape == (12, 1, 1, 1)
        assert task.support_y.tolist() == [0, 0, 1, 1, 2, 2]
        assert task.query_y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
        support, query = _indices(task.support_x), _indices(task.query_x)
        assert len(set(support + query)) == 18  # every image at most once per task
        # task label k stands for original class classes[k]
        assert torch.equal(labels[support], task.classes[task.support_y])
        assert torch.equal(labels[query], task.classes[task.query_y])
        assert len(set(task.classes.tolist())) == 3


def test_every_draw_is_a_new_task_and_seeds_repeat():
    images, labels = _numbered()
    stream = iter(FewShotTasks(images, labels, ways=2, shots=1, queries=1, random_state=3))
    draws = [next(stream) for _ in range(60)]
    class_sets = {tuple(sorted(t.classes.tolist())) for t in draws}
    assert len(class_sets) == 15  # all C(6, 2) class pairs appear, not one group again and again
    assert len({tuple(_indices(t.support_x)) for t in draws}) > 40
    again = FewShotTasks(images, labels, ways=2, shots=1, queries=1, random_state=3).sample(60)
    assert all(torch.equal(a.support_x, b.support_x) for a, b in zip(draws, again))
    other = FewShotTasks(images, labels, ways=2, shots=1, queries=1, random_state=4).sample(60)
    assert not all(torch.equal(a.support_x, b.support_x) for a, b in zip(draws, other))


def test_meta_train_and_meta_test_classes_are_disjoint():
    images, labels = rotate_classes(*load_digits_images())
    digit = [c % 10 for c in range(40)]
    for groups, num_test in ((None, 12), (digit, 3)):
        train, test = split_classes(range(40), num_test=num_test, groups=groups, random_state=1)
        assert len(test) == 12 and set(train) | set(test) == set(range(40))
        assert not set(train) & set(test)
        meta_train = FewShotTasks(images, labels, ways=5, shots=1, queries=1, classes=train)
        meta_test = FewShotTasks(images, labels, ways=5, shots=1, queries=1, classes=test)
        seen_train = {c for t in meta_train.sample(50) for c in t.classes.tolist()}
        seen_test = {c for t in meta_test.sample(50) for c in t.classes.tolist()}
        assert seen_train <= set(train) and seen_test <= set(test)
        assert seen_test == set(test)
    # grouped: the four rotations of a digit are on the same side
    train, test = split_classes(range(40), num_test=3, groups=digit, random_state=1)
    assert {c % 10 for c in train}.isdisjoint({c % 10 for c in test})
    assert split_classes(range(40), num_test=12, random_state=5) == split_classes(
        range(40), num_test=12, random_state=5
    )


def test_split_bad_input():
    with pytest.raises(ValueError, match="num_test must be an integer >= 1 and <= 9"):
        split_classes(range(10), num_test=10)
    with pytest.raises(ValueError, match="one group per class"):
        split_classes(range(4), num_test=1, groups=[0, 1])
    with pytest.raises(ValueError, match="distinct"):
        split_classes([1, 1, 2], num_test=1)


def test_bad_tasks_give_clear_errors():
    images, labels = _numbered(num_classes=4, per_class=5)
    with pytest.raises(ValueError, match="ways=5 is more than the 4 classes"):
        FewShotTasks(images, labels, ways=5, shots=1, queries=1)
    with pytest.raises(ValueError, match="ways=3 is more than the 2 classes"):
        FewShotTasks(images, labels, ways=3, shots=1, queries=1, classes=[0, 1])
    with pytest.raises(ValueError, match=r"shots \+ queries = 2 \+ 4 .* class \d has only 5"):
        FewShotTasks(images, labels, ways=2, shots=2, queries=4)
    with pytest.raises(ValueError, match=r"classes \[7\] do not occur"):
        FewShotTasks(images, labels, ways=2, shots=1, queries=1, classes=[0, 7])
    with pytest.raises(ValueError, match="ways must be an integer >= 2"):
        FewShotTasks(images, labels, ways=1, shots=1, queries=1)
    with pytest.raises(ValueError, match="shots must be an integer >= 1"):
        FewShotTasks(images, labels, ways=2, shots=0, queries=1)
    with pytest.raises(ValueError, match="1-d integer"):
        FewShotTasks(images, labels.float(), ways=2, shots=1, queries=1)
    # the fewest-sample class decides: class 3 has only 2 images here
    labels = torch.tensor([0] * 8 + [1] * 8 + [2] * 2)
    with pytest.raises(ValueError, match="class 2 has only 2"):
        FewShotTasks(torch.zeros(18, 1), labels, ways=2, shots=2, queries=1)


def test_seed_is_a_deprecated_alias_of_random_state():
    images, labels = _numbered()
    new = FewShotTasks(images, labels, ways=2, shots=1, queries=1, random_state=2).sample(5)
    with pytest.warns(DeprecationWarning, match="FewShotTasks\\(\\): 'seed' is deprecated"):
        old = FewShotTasks(images, labels, ways=2, shots=1, queries=1, seed=2).sample(5)
    assert [_indices(t.support_x) for t in new] == [_indices(t.support_x) for t in old]
    with pytest.warns(DeprecationWarning, match="split_classes\\(\\): 'seed'"):
        assert split_classes(range(10), num_test=3, seed=1) == split_classes(
            range(10), num_test=3, random_state=1
        )


def test_a_numpy_generator_is_a_task_stream_shared_with_the_caller():
    images, labels = _numbered()
    rng = np.random.default_rng(5)
    tasks = FewShotTasks(images, labels, ways=2, shots=1, queries=1, random_state=rng)
    seeded = FewShotTasks(images, labels, ways=2, shots=1, queries=1, random_state=5)
    assert [_indices(t.query_x) for t in tasks.sample(4)] == [
        _indices(t.query_x) for t in seeded.sample(4)
    ]
    with pytest.raises(TypeError, match="random_state must be"):
        FewShotTasks(images, labels, ways=2, shots=1, queries=1, random_state=0.5)
