import numpy as np
import pytest
import torch

from vitcourse.patches import extract_patches, patches_to_images


def test_grey_28x28_gives_49_patches_of_16():
    images = np.arange(2 * 28 * 28).reshape(2, 28, 28)
    patches = extract_patches(images, 4)
    assert patches.shape == (2, 49, 16)
    # Patch 0 is the top-left 4x4 square, read row by row; patch 1 is the square to its right.
    assert patches[0, 0].tolist() == [0, 1, 2, 3, 28, 29, 30, 31, 56, 57, 58, 59, 84, 85, 86, 87]
    assert patches[0, 1, :4].tolist() == [4, 5, 6, 7]
    # Patch 7 starts the second band of squares: pixel row 4, column 0.
    assert patches[0, 7, 0] == 4 * 28


def test_channels_are_innermost():
    images = np.arange(1 * 4 * 4 * 3).reshape(1, 4, 4, 3)
    patches = extract_patches(images, 2)
    assert patches.shape == (1, 4, 12)
    assert patches[0, 0].tolist() == images[0, :2, :2].reshape(-1).tolist()


def test_torch_and_numpy_agree_and_round_trip():
    images = torch.rand(3, 32, 32, 3)
    patches = extract_patches(images, 8)
    assert torch.equal(patches, torch.from_numpy(extract_patches(images.numpy(), 8)))
    assert torch.equal(patches_to_images(patches, (32, 32), channels=3), images)


def test_non_square_images():
    images = np.random.rand(2, 8, 12)
    assert extract_patches(images, 4).shape == (2, 6, 16)
    assert np.array_equal(patches_to_images(extract_patches(images, 4), (8, 12)), images)


def test_side_not_divisible_says_how_to_fix():
    with pytest.raises(ValueError, match=r"28×28 is not a multiple of patch_size=5"):
        extract_patches(np.zeros((1, 28, 28)), 5)


def test_single_image_without_batch_axis_says_how_to_fix():
    with pytest.raises(ValueError, match=r"got shape \(28, 28\)\. .*images\[None\]"):
        extract_patches(np.zeros((28, 28)), 4)


@pytest.mark.parametrize("shape", [(1, 64, 28, 28, 1), (2, 1, 28, 28, 3, 1)])
def test_too_many_axes_says_so_and_not_to_add_a_batch_axis(shape):
    with pytest.raises(ValueError) as caught:
        extract_patches(np.zeros(shape), 4)
    message = str(caught.value)
    assert f"got shape {shape}" in message and f"{len(shape)} axes are too many" in message
    assert "images[None]" not in message and "needs a batch axis" not in message


def test_too_few_axes_says_so():
    with pytest.raises(ValueError, match=r"got shape \(28,\)\. 1 axis is too few"):
        extract_patches(np.zeros((28,)), 4)


@pytest.mark.parametrize("size", [0, -2, 2.5])
def test_bad_patch_size(size):
    with pytest.raises(ValueError, match="positive int"):
        extract_patches(np.zeros((1, 4, 4)), size)
