"""Augmentation on the device, a whole batch at a time: no DataLoader, no per-image Python.

Images travel as uint8 (B, C, H, W); :func:`to_unit_float` turns a batch into floats in [0, 1],
and every function here works on such batches with batched tensor operations.

* classification (chapters 6, 8, 9): :func:`random_crop` (zero padding), :func:`random_flip`,
  :func:`mixup`, :func:`cutmix` with :func:`cutmix_box`; :class:`BatchAugment` applies them
  with its own seeded generators, whose state a checkpoint carries;
* DINO's multi-crop (chapter 7): :func:`random_resized_crop`, :func:`color_jitter`,
  :func:`multi_crop` (two global views and several local ones).
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F
from torch import nn

from vitcourse.device import indexed_device


def to_unit_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) 0..255 → float32 in [0, 1]."""
    if images_uint8.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images 0..255, got {images_uint8.dtype}")
    return images_uint8.float().div_(255)


# ----------------------------------------------------------------------------------------------
# Classification: crops, flips, mixup, CutMix
# ----------------------------------------------------------------------------------------------

def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Pad every side with zeros, then cut a random H×W window per image.

    images (B, C, H, W) → (B, C, H, W): each image is shifted by its own (dy, dx) in
    [-padding, padding]², the uncovered border filled with 0 (black, before normalising).
    """
    if padding == 0:
        return images
    batch, _, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, batch), generator=generator, device=images.device)
    rows = offsets[0, :, None] + torch.arange(height, device=images.device)     # (B, H)
    cols = offsets[1, :, None] + torch.arange(width, device=images.device)      # (B, W)
    picked = padded[torch.arange(batch, device=images.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return picked.permute(0, 3, 1, 2)   # advanced indexing put the channels last: (B, H, W, C)


def random_flip(images: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror a random ``p`` share of the images left ↔ right. (B, C, H, W) → (B, C, H, W)."""
    flip = torch.rand(len(images), generator=generator, device=images.device) < p
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def mixup(images: torch.Tensor, targets: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend each image (and its target) with the batch's mirror image: λ·x + (1-λ)·x[::-1]."""
    return lam * images + (1 - lam) * images.flip(0), lam * targets + (1 - lam) * targets.flip(0)


def cutmix(images: torch.Tensor, targets: torch.Tensor, box: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste the box (top, bottom, left, right) from the batch's mirror image; targets by area."""
    top, bottom, left, right = box
    height, width = images.shape[-2:]
    mixed = images.clone()
    mixed[..., top:bottom, left:right] = images.flip(0)[..., top:bottom, left:right]
    lam = 1 - (bottom - top) * (right - left) / (height * width)
    return mixed, lam * targets + (1 - lam) * targets.flip(0)


def cutmix_box(height: int, width: int, lam: float, rng: random.Random) -> tuple[int, int, int, int]:
    """A box covering about 1-λ of the image at a random centre, clipped to the image."""
    cut_h, cut_w = round(height * math.sqrt(1 - lam)), round(width * math.sqrt(1 - lam))
    cy, cx = rng.randrange(height), rng.randrange(width)
    return (max(cy - cut_h // 2, 0), min(cy + cut_h - cut_h // 2, height),
            max(cx - cut_w // 2, 0), min(cx + cut_w - cut_w // 2, width))


class BatchAugment(nn.Module):
    """Training-time augmentation of a whole batch on its device; a no-op in eval mode.

    images (B, C, H, W) in [0, 1], targets (B, K) probabilities → the same shapes and dtypes.
    Per-image draws (crop offsets, flips) come from a ``torch.Generator`` on the device; the
    per-batch mixing draws (mixup or CutMix, λ, the box) from a host ``random.Random``, so no
    step waits for the GPU. Both are seeded by ``seed``; :meth:`rng_state` /
    :meth:`set_rng_state` carry them through a checkpoint.
    """

    def __init__(self, *, crop_padding: int = 4, flip: bool = True, mixup_alpha: float = 0.0,
                 cutmix_alpha: float = 0.0, mix_prob: float = 0.0, seed: int = 0,
                 device: torch.device | str = "cpu"):
        super().__init__()
        if crop_padding < 0 or mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(f"crop_padding, mixup_alpha and cutmix_alpha must be ≥ 0, got "
                             f"{crop_padding}, {mixup_alpha}, {cutmix_alpha}")
        self.crop_padding, self.flip = crop_padding, flip
        self.mixup_alpha, self.cutmix_alpha, self.mix_prob = mixup_alpha, cutmix_alpha, mix_prob
        self.generator = torch.Generator(indexed_device(device)).manual_seed(seed)
        self.host_rng = random.Random(seed)

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.training:
            return images, targets
        if images.device != self.generator.device:
            raise ValueError(f"images are on {images.device} but the augmentation's generator is on "
                             f"{self.generator.device}; build BatchAugment with device={images.device}")
        images = random_crop(images, self.crop_padding, self.generator)
        if self.flip:
            images = random_flip(images, self.generator)
        return self._mix(images, targets)

    def _mix(self, images, targets):
        modes = [m for m, alpha in (("mixup", self.mixup_alpha), ("cutmix", self.cutmix_alpha)) if alpha > 0]
        if not modes or self.host_rng.random() >= self.mix_prob:
            return images, targets
        mode = self.host_rng.choice(modes)
        if mode == "mixup":
            return mixup(images, targets, self.host_rng.betavariate(self.mixup_alpha, self.mixup_alpha))
        lam = self.host_rng.betavariate(self.cutmix_alpha, self.cutmix_alpha)
        return cutmix(images, targets, cutmix_box(*images.shape[-2:], lam, self.host_rng))

    def rng_state(self) -> dict:
        return {"generator": self.generator.get_state(), "host": self.host_rng.getstate()}

    def set_rng_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        host = state["host"]   # a checkpoint stores the tuple's inner tuple as a list
        self.host_rng.setstate((host[0], tuple(host[1]), host[2]))

    def extra_repr(self) -> str:
        return (f"crop_padding={self.crop_padding}, flip={self.flip}, mixup_alpha={self.mixup_alpha}, "
                f"cutmix_alpha={self.cutmix_alpha}, mix_prob={self.mix_prob}")


# ----------------------------------------------------------------------------------------------
# DINO's multi-crop
# ----------------------------------------------------------------------------------------------


def random_resized_crop(
    images: torch.Tensor,
    size: int,
    scale: tuple[float, float],
    generator: torch.Generator,
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """Cut a random box from every image and resize it to size × size: (B, C, H, W) →
    (B, C, size, size).

    The box covers a share of the image drawn from ``scale`` with an aspect ratio drawn
    (log-uniformly) from ``ratio``. To stay one batched operation the box's *size* is
    drawn once per call (per view) and its *position* per image; the crops are cut by
    indexing and resized together with ``F.interpolate`` (bilinear).
    """
    box_h, box_w = _box_shape(images.shape[-2:], scale, ratio, generator)  # per call
    boxes = _cut_boxes(images, box_h, box_w, generator)  # (B, C, box_h, box_w)
    return F.interpolate(boxes, size=(size, size), mode="bilinear", align_corners=False)


def _box_shape(image_shape, scale: tuple[float, float], ratio: tuple[float, float],
               generator: torch.Generator) -> tuple[int, int]:
    """(height, width) of a box covering a share drawn from ``scale`` of an image of
    ``image_shape`` (H, W), its aspect ratio drawn log-uniformly from ``ratio``."""
    height, width = image_shape
    draws = torch.rand(2, generator=generator, device=generator.device).tolist()
    area = scale[0] + (scale[1] - scale[0]) * draws[0]
    aspect = math.exp(
        math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * draws[1]
    )
    box_h = min(height, max(1, round(math.sqrt(area * aspect) * height)))
    box_w = min(width, max(1, round(math.sqrt(area / aspect) * width)))
    return box_h, box_w


def _cut_boxes(images: torch.Tensor, box_h: int, box_w: int,
               generator: torch.Generator) -> torch.Tensor:
    """A box_h × box_w box from every image, at a random place of its own, by indexing:
    (B, C, H, W) → (B, C, box_h, box_w)."""
    batch, _, height, width = images.shape
    corner = torch.rand(2, batch, generator=generator, device=generator.device).to(
        images.device
    )
    top = (corner[0] * (height - box_h + 1)).long()
    left = (corner[1] * (width - box_w + 1)).long()
    rows = top[:, None] + torch.arange(box_h, device=images.device)  # (B, h)
    cols = left[:, None] + torch.arange(box_w, device=images.device)  # (B, w)
    boxes = images[
        torch.arange(batch, device=images.device)[:, None, None],
        :,
        rows[:, :, None],
        cols[:, None, :],
    ]
    return boxes.permute(0, 3, 1, 2)  # indexing put channels last


def color_jitter(images: torch.Tensor, generator: torch.Generator, strength: float = 0.4,
                 grayscale_p: float = 0.2) -> torch.Tensor:
    """Per image: random brightness, contrast and saturation (factors in 1 ± strength), then a
    ``grayscale_p`` chance of grey. (B, 3, H, W) in [0, 1] → same, clipped to [0, 1].

    Without it, DINO can match two crops by their colour statistics alone.
    """
    if strength == 0 and grayscale_p == 0:
        return images
    batch = len(images)
    draws = torch.rand(4, batch, 1, 1, 1, generator=generator, device=generator.device).to(images.device)
    factors = 1 + strength * (2 * draws[:3] - 1)                            # (3, B, 1, 1, 1)
    grey_weights = torch.tensor([0.299, 0.587, 0.114], device=images.device, dtype=images.dtype)[:, None, None]
    images = images * factors[0]                                               # brightness
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = mean + (images - mean) * factors[1]                               # contrast
    grey = (images * grey_weights).sum(1, keepdim=True)
    images = grey + (images - grey) * factors[2]                               # saturation
    grey = (images * grey_weights).sum(1, keepdim=True)
    images = torch.where(draws[3] < grayscale_p, grey.expand_as(images), images)
    return images.clamp(0, 1)


def multi_crop(images: torch.Tensor, generator: torch.Generator, *, global_size: int, local_size: int,
               n_local: int, global_scale: tuple[float, float] = (0.4, 1.0),
               local_scale: tuple[float, float] = (0.05, 0.4), jitter: float = 0.4,
               grayscale_p: float = 0.2) -> list[torch.Tensor]:
    """2 global and ``n_local`` local views of a batch: (B, C, H, W) in [0, 1] →
    [(B, C, global_size, global_size)] × 2 + [(B, C, local_size, local_size)] × n_local.

    Every view: a random resized crop (large boxes for the global views, small ones for the
    local views), a random horizontal flip and colour jitter (which turns a ``grayscale_p``
    share of the views grey), each image drawn independently.
    """
    if n_local < 0:
        raise ValueError(f"n_local must be ≥ 0, got {n_local}")
    for name, (low, high) in (("global_scale", global_scale), ("local_scale", local_scale)):
        if not 0 < low <= high <= 1:
            raise ValueError(f"{name} must be (low, high) with 0 < low ≤ high ≤ 1, got {(low, high)}")
    plan = [(global_size, global_scale)] * 2 + [(local_size, local_scale)] * n_local
    views = []
    for size, scale in plan:
        view = random_flip(random_resized_crop(images, size, scale, generator), generator)
        views.append(color_jitter(view, generator, jitter, grayscale_p))
    return views
