"""Real photographs for the patch-cutting and attention-map chapters, loaded from files that
ship inside already-installed packages, so nothing has to be downloaded.

The photographs come with matplotlib's sample data (``mpl-data/sample_data``).
"""

from __future__ import annotations

import matplotlib.cbook
import numpy as np
import torch
from PIL import Image

# name → what it shows; all ship with matplotlib.
SAMPLE_PHOTOS = {
    "grace_hopper.jpg": "portrait of Rear Admiral Grace Hopper in uniform (colour, 600×512)",
}


def load_photo(name: str = "grace_hopper.jpg", size: int | None = None) -> torch.Tensor:
    """Load a photograph bundled with matplotlib as a float RGB tensor.

    Args:
        name: a key of :data:`SAMPLE_PHOTOS`.
        size: if given, centre-crop to a square and resize to ``size × size`` (bilinear),
            e.g. 224 so that 16 × 16 patches tile it exactly.

    Returns:
        (H, W, 3) float32 tensor with values in [0, 1], channels last.

    Raises:
        ValueError: for an unknown ``name`` or a ``size`` that is not a positive int.
    """
    if name not in SAMPLE_PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose one of {', '.join(SAMPLE_PHOTOS)}.")
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ValueError(f"size must be a positive int or None, got {size!r}.")
    path = matplotlib.cbook.get_sample_data(name, asfileobj=False)
    with Image.open(path) as image:
        image = image.convert("RGB")
        if size is not None:
            image = _centre_square(image).resize((size, size), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(pixels)


def _centre_square(image: Image.Image) -> Image.Image:
    """The largest centred square crop of ``image``."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))
