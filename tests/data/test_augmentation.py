import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from mltricks.data import RandomShiftRotate, affine_batch, augmentation


def _images(num, channels=1, height=6, width=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(num, channels, height, width, generator=generator)


def _torchvision_affine(image, angle, shift):
    return TF.affine(
        image,
        angle=float(angle),
        translate=[float(v) for v in shift],
        scale=1.0,
        shear=[0.0, 0.0],
        interpolation=InterpolationMode.BILINEAR,
    )


def test_affine_batch_equals_torchvision_per_sample():
    images = _images(3, channels=2, height=6, width=10)
    angles = torch.tensor([7.0, -33.0, 90.0])
    shifts = torch.tensor([[1.0, -2.0], [0.0, 0.0], [-1.0, 1.0]])
    out = affine_batch(images, angles, shifts)
    for i in range(3):
        reference = _torchvision_affine(images[i], angles[i], shifts[i])
        torch.testing.assert_close(out[i], reference, atol=1e-5, rtol=0)


def test_affine_batch_flips_before_rotating_as_torchvision_does():
    images = _images(4, channels=3, height=8, width=12)
    angles = torch.tensor([15.0, 15.0, -40.0, 0.0])
    shifts = torch.tensor([[2.0, 1.0], [2.0, 1.0], [0.0, -1.0], [0.0, 0.0]])
    flips = torch.tensor([True, False, True, True])
    out = affine_batch(images, angles, shifts, flips=flips)
    for i in range(4):
        image = TF.horizontal_flip(images[i]) if flips[i] else images[i]
        reference = _torchvision_affine(image, angles[i], shifts[i])
        torch.testing.assert_close(out[i], reference, atol=1e-5, rtol=0)
    # a flip alone is the mirror image
    torch.testing.assert_close(out[3], images[3].flip(-1), atol=1e-5, rtol=0)


def test_padding_mode_decides_what_enters_at_the_border():
    ones = torch.ones(1, 1, 6, 6)
    shift = torch.tensor([[2.0, 0.0]])  # two columns enter from the left
    zeros = affine_batch(ones, torch.zeros(1), shift)
    assert torch.equal(zeros[0, 0, :, :2], torch.zeros(6, 2))
    assert torch.allclose(zeros[0, 0, :, 2:], torch.ones(6, 4))
    for mode in ("border", "reflection"):
        torch.testing.assert_close(
            affine_batch(ones, torch.zeros(1), shift, padding_mode=mode), ones
        )
    ramp = torch.arange(6.0).expand(1, 1, 6, 6)
    border = affine_batch(ramp, torch.zeros(1), shift, padding_mode="border")
    torch.testing.assert_close(border[0, 0, 0], torch.tensor([0.0, 0.0, 0.0, 1.0, 2.0, 3.0]))
    reflection = affine_batch(ramp, torch.zeros(1), shift, padding_mode="reflection")
    torch.testing.assert_close(reflection[0, 0, 0], torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 3.0]))


def test_random_shift_rotate_draws_the_random_affine_parameters_per_sample():
    # the draws are v2.RandomAffine's ranges, one set per image: recompute them from the seed
    images = _images(16, height=8, width=8)
    torch.manual_seed(3)
    out = RandomShiftRotate(degrees=12.0, translate=0.25)(images)
    torch.manual_seed(3)
    angles = (torch.rand(16) * 2 - 1) * 12.0
    shifts = torch.round((torch.rand(16, 2) * 2 - 1) * 2.0)  # 0.25 of 8 pixels
    assert angles.abs().max() <= 12.0 and set(shifts.unique().tolist()) <= {-2, -1, 0, 1, 2}
    torch.testing.assert_close(out, affine_batch(images, angles, shifts))


def test_random_shift_rotate_shifts_by_whole_pixels_per_sample():
    torch.manual_seed(0)
    image = torch.zeros(1, 8, 8)
    image[0, 3:5, 3:5] = 1.0
    out = RandomShiftRotate(degrees=0.0, translate=0.25)(image.expand(64, 1, 8, 8).clone())
    # without rotation every output is the image moved by whole pixels: values stay 0 or 1
    assert torch.all((out == 0) | (out == 1))
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) > 5  # one draw per sample, not one per batch
    assert RandomShiftRotate()(image).shape == image.shape  # a single image (C, H, W)


def test_random_flip_mirrors_about_half_of_the_images():
    torch.manual_seed(0)
    images = _images(200, height=5, width=7)
    out = RandomShiftRotate(degrees=0.0, translate=0.0, flip=True)(images)
    same = (out - images).flatten(1).abs().amax(1) < 1e-5
    mirrored = (out - images.flip(-1)).flatten(1).abs().amax(1) < 1e-5
    assert torch.all(same ^ mirrored)  # each image is itself or its mirror, never both
    assert 70 < int(mirrored.sum()) < 130  # probability 1/2
    identity = RandomShiftRotate(degrees=0.0, translate=0.0)(images)
    torch.testing.assert_close(identity, images, atol=1e-5, rtol=0)


def test_augmentation_keeps_shape_and_range_and_changes_the_images():
    torch.manual_seed(0)
    images = _images(16)
    out = augmentation(degrees=10, translate=0.2, noise=0.1)(images)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, images)
    # no rotation, no shift, no noise: the images come back unchanged
    torch.testing.assert_close(augmentation(0, 0, 0)(images), images, atol=1e-6, rtol=0)
    # noise 0 leaves the noise step out; flip reaches the geometric step
    steps = augmentation(5, 0.1, 0, flip=True, padding_mode="border").transforms
    assert len(steps) == 1 and steps[0].flip and steps[0].padding_mode == "border"


def test_same_global_seed_gives_the_same_augmentation():
    images = _images(8)
    augment = augmentation(flip=True)
    torch.manual_seed(7)
    first = augment(images)
    torch.manual_seed(7)
    torch.testing.assert_close(augment(images), first)
    assert not torch.allclose(augment(images), first)  # the next call draws anew


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: augmentation(noise=-0.1), ValueError, "noise"),
        (lambda: RandomShiftRotate(degrees=200), ValueError, "degrees must be a number"),
        (lambda: RandomShiftRotate(translate=1.5), ValueError, "translate"),
        (lambda: RandomShiftRotate(padding_mode="wrap"), ValueError, "padding_mode .*'wrap'"),
        (lambda: RandomShiftRotate()(torch.zeros(8, 8)), ValueError, r"images .*\(8, 8\)"),
        (
            lambda: affine_batch(torch.zeros(2, 1, 4, 4), torch.zeros(3), torch.zeros(2, 2)),
            ValueError,
            r"angles must have shape \(2,\)",
        ),
        (
            lambda: affine_batch(torch.zeros(2, 1, 4, 4), torch.zeros(2), torch.zeros(2)),
            ValueError,
            r"shifts must have shape \(2, 2\)",
        ),
        (
            lambda: affine_batch(
                torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2), torch.zeros(2, 2)
            ),
            TypeError,
            "floating point",
        ),
    ],
)
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
