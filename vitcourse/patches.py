"""Cutting images into patches: fold → swap → glue.

The three moves, on a batch of square images of side ``S`` cut into ``P × P`` patches
(``n = S // P`` patches per side):

* fold:  (N, S, S, C) → (N, n, P, n, P, C)    no pixel moves; each gets a longer address
* swap:  → (N, n, n, P, P, C)                  the two grid axes together, then the two in-patch axes
* glue:  → (N, n·n, P·P·C)                     one flat row per patch, in reading order

Works on NumPy arrays and torch tensors alike (both have ``reshape`` and a transpose).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

ArrayLike = TypeVar("ArrayLike", np.ndarray, torch.Tensor)


def _permute(x: ArrayLike, order: tuple[int, ...]) -> ArrayLike:
    return x.permute(*order) if isinstance(x, torch.Tensor) else x.transpose(order)


def _axes_hint(shape: tuple[int, ...]) -> str:
    """How to fix an input with the wrong number of axes, for the error message."""
    if len(shape) == 2:
        return "A single image needs a batch axis: images[None]."
    if len(shape) < 2:
        axes = "1 axis is" if len(shape) == 1 else "0 axes are"
        return f"{axes} too few: an image has a height and a width."
    return (
        f"{len(shape)} axes are too many: remove the extra ones (an axis of length 1 "
        f"with squeeze, or index it away) before cutting."
    )


def extract_patches(images: ArrayLike, patch_size: int) -> ArrayLike:
    """Cut a batch of images into flattened square patches.

    Args:
        images: (N, H, W) grey images or (N, H, W, C) channels-last images,
            NumPy or torch. H and W must be multiples of ``patch_size``.
        patch_size: side P of each square patch.

    Returns:
        (N, (H/P)·(W/P), P·P·C) patches in row-major (reading) order; each row holds
        one patch's pixels row by row (channels innermost). C = 1 for grey images.

    Raises:
        ValueError: on a wrong number of axes or a side that P does not divide,
            with the shape that was given and how to fix it.
    """
    if not isinstance(patch_size, (int, np.integer)) or patch_size < 1:
        raise ValueError(f"patch_size must be a positive int, got {patch_size!r}.")
    shape = tuple(images.shape)
    if len(shape) == 3:
        n_img, height, width = shape
        channels = 1
    elif len(shape) == 4:
        n_img, height, width, channels = shape
    else:
        raise ValueError(
            f"extract_patches wants (N, H, W) or channels-last (N, H, W, C) images, "
            f"got shape {shape}. " + _axes_hint(shape)
        )
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"image side {height}×{width} is not a multiple of patch_size={patch_size}; "
            f"crop or pad the images, or pick a patch size that divides both sides."
        )
    rows, cols = height // patch_size, width // patch_size
    folded = images.reshape(n_img, rows, patch_size, cols, patch_size, channels)  # fold
    swapped = _permute(folded, (0, 1, 3, 2, 4, 5))                                  # swap
    return swapped.reshape(n_img, rows * cols, patch_size * patch_size * channels)  # glue


def patches_to_images(patches: ArrayLike, image_size: tuple[int, int], channels: int = 1) -> ArrayLike:
    """Undo :func:`extract_patches`: (N, L, P·P·C) → (N, H, W) or (N, H, W, C) when C > 1."""
    height, width = image_size
    n_img, n_patches, dim = patches.shape
    patch_size = int(round((dim / channels) ** 0.5))
    rows, cols = height // patch_size, width // patch_size
    if patch_size * patch_size * channels != dim or rows * cols != n_patches:
        raise ValueError(
            f"patches of shape {tuple(patches.shape)} do not tile a {height}×{width} image "
            f"with {channels} channel(s)."
        )
    x = patches.reshape(n_img, rows, cols, patch_size, patch_size, channels)
    x = _permute(x, (0, 1, 3, 2, 4, 5)).reshape(n_img, height, width, channels)
    return x[..., 0] if channels == 1 else x
