"""vitcourse.photos: a real photograph from an installed package, as a float tensor."""

from __future__ import annotations

import matplotlib.cbook
import matplotlib.image
import numpy as np
import pytest
import torch

from vitcourse.photos import SAMPLE_PHOTOS, load_photo


def test_grace_hopper_loads_at_native_size_as_float_rgb_in_0_1():
    photo = load_photo()
    assert isinstance(photo, torch.Tensor) and photo.dtype == torch.float32
    assert photo.shape == (600, 512, 3)
    assert 0.0 <= photo.min() and photo.max() <= 1.0 and photo.std() > 0.1
    reference = matplotlib.image.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    np.testing.assert_allclose(photo.numpy(), reference / 255.0, atol=1e-6)


def test_size_centre_crops_to_a_square_and_resizes():
    native = load_photo()
    small = load_photo(size=32)
    assert small.shape == (32, 32, 3)
    # The crop keeps the middle 512 of the 600 rows, so the resized photo matches the
    # area-average of that centre square to within resampling error.
    centre = native[44:556].reshape(32, 16, 32, 16, 3).mean(dim=(1, 3))
    assert (small - centre).abs().mean() < 0.03


def test_a_224_photo_tiles_into_16_pixel_patches():
    from vitcourse.patches import extract_patches

    patches = extract_patches(load_photo(size=224)[None], 16)
    assert patches.shape == (1, 196, 16 * 16 * 3)


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "lena.png"}, r"unknown photo 'lena.png'; choose one of grace_hopper.jpg"),
    ({"size": 0}, r"size must be a positive int or None, got 0"),
    ({"size": 32.0}, r"size must be a positive int or None, got 32.0"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_photo(**kwargs)


def test_every_listed_photo_ships_with_matplotlib():
    for name in SAMPLE_PHOTOS:
        assert load_photo(name).shape[-1] == 3
