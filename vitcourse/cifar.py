"""A fast CIFAR-10 recipe for the paper's ViT: one GPU, several through torchrun, or a laptop CPU.

What makes it fast (and what each piece is for):

* the whole training set sits on the device as uint8 (150 MB for CIFAR-10); a batch is an
  index slice, and augmentation runs there as batched tensor ops (:class:`BatchAugment`:
  random crop with zero padding, horizontal flip, optional mixup/CutMix): no DataLoader,
  no worker processes, no per-image Python;
* AdamW (fused on CUDA) with linear warm-up and cosine decay (:func:`warmup_cosine`),
  weight decay on weight matrices only, label smoothing (:func:`smooth_targets`);
* bf16 autocast on CUDA (:func:`autocast_dtype`), ``torch.compile`` where it works
  (falls back to eager, with a warning, where it does not);
* checkpoints written atomically (:func:`save_checkpoint`) that resume bit for bit;
* several GPUs through ``torchrun`` and ``DistributedDataParallel``: each process takes every
  ``world``-th index of the epoch's shuffled order, as ``DistributedSampler`` does.

Command line (``python -m vitcourse.cifar --help``)::

    python -m vitcourse.cifar --profile full --checkpoint runs/vit.pt
    python -m torch.distributed.run --nproc_per_node=8 -m vitcourse.cifar --profile full
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
# Plain-text bars: they render in a terminal, in JupyterLab and in the built (offline) book alike.
from vitcourse.progress import progress_bar

from vitcourse.device import autocast_dtype, get_device
from vitcourse.profile import Profile, get_profile
from vitcourse.vit import ViTConfig, VisionTransformer

# Per-channel statistics of the CIFAR-10 training set (pixels scaled to [0, 1]).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)

# The CIFAR model: patch 4 on 32×32 gives 64 patches + CLS; 4.77 M parameters.
CIFAR_VIT = ViTConfig(image_size=32, patch_size=4, num_classes=10, dim=256, depth=6, heads=8, drop_path=0.1)
# The quick profile's stand-in: the same code, sized to train in seconds on a 2-core CPU
# (patch 8 → 16 patches + CLS; 0.2 M parameters).
QUICK_VIT = ViTConfig(image_size=32, patch_size=8, num_classes=10, dim=64, depth=4, heads=4)


# ----------------------------------------------------------------------------------------------
# The recipe
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recipe:
    """Every knob of a training run. ``full_recipe()`` and ``quick_recipe()`` are the two presets.

    ``batch_size`` is the global batch: with N processes each takes ``batch_size / N``.
    ``train_subset`` / ``test_subset`` train and test on the first images only (None: all).
    ``compile`` and ``bf16``: None means "on CUDA only".
    """

    model: ViTConfig = CIFAR_VIT
    epochs: int = 200
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 10.0
    min_lr_ratio: float = 0.01
    label_smoothing: float = 0.1
    crop_padding: int = 4
    flip: bool = True
    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    mix_prob: float = 0.5
    grad_clip: float | None = 1.0
    train_subset: int | None = None
    test_subset: int | None = None
    compile: bool | None = None
    bf16: bool | None = None
    seed: int = 0

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs={self.epochs}), got {self.warmup_epochs}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 <= self.mix_prob <= 1.0:
            raise ValueError(f"mix_prob must be in [0, 1], got {self.mix_prob}")


def full_recipe(**overrides) -> Recipe:
    """The GPU recipe: 200 epochs of the 4.77 M-parameter CIFAR ViT on all 50,000 images, batches of 1,024.

    lr 1e-3 for batch 1,024 follows DeiT's rule (5e-4 × batch / 512). Batch 1,024 rather than
    512 because at 512 an H100 step is bound by the host's launch overhead (27,400 images/s,
    eager or compiled alike), at 1,024 by the GPU (50,900 images/s): bench/vit_throughput.py.
    """
    return replace(Recipe(), **overrides)


def quick_recipe(**overrides) -> Recipe:
    """A small fixed budget for a 2-core CPU: a 0.2 M-parameter ViT, 10,000 images, 3 epochs."""
    quick = Recipe(model=QUICK_VIT, epochs=3, batch_size=128, lr=2e-3, warmup_epochs=1.0,
                   mixup_alpha=0.0, cutmix_alpha=0.0, mix_prob=0.0, train_subset=10_000, test_subset=2_000)
    return replace(quick, **overrides)


def recipe_for(profile: Profile | None = None, **overrides) -> Recipe:
    """``quick_recipe`` in the quick profile, ``full_recipe`` in the full one."""
    profile = profile or get_profile()
    return profile.pick(quick=quick_recipe, full=full_recipe)(**overrides)


# ----------------------------------------------------------------------------------------------
# Augmentation on the device, in batches
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
        self.generator = torch.Generator(_indexed(torch.device(device))).manual_seed(seed)
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


def _indexed(device: torch.device) -> torch.device:
    """``cuda`` → ``cuda:<current>``, so it compares equal to the device tensors report."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def normalize(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] → zero mean, unit spread per channel (CIFAR-10's statistics)."""
    mean = torch.tensor(CIFAR_MEAN, device=images.device, dtype=images.dtype)[:, None, None]
    std = torch.tensor(CIFAR_STD, device=images.device, dtype=images.dtype)[:, None, None]
    return (images - mean) / std


def to_unit_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) 0..255 → float32 in [0, 1]."""
    if images_uint8.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images 0..255, got {images_uint8.dtype}")
    return images_uint8.float().div_(255)


# ----------------------------------------------------------------------------------------------
# Loss, optimiser, schedule, mixed precision
# ----------------------------------------------------------------------------------------------

def smooth_targets(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """labels (B,) → target distributions (B, K): 1-ε+ε/K on the true class, ε/K elsewhere."""
    if labels.dim() != 1 or labels.dtype != torch.int64:
        raise ValueError(f"labels must be int64 of shape (B,), got {labels.dtype} {tuple(labels.shape)}")
    targets = torch.full((len(labels), num_classes), smoothing / num_classes, device=labels.device)
    return targets.scatter_(1, labels[:, None], 1 - smoothing + smoothing / num_classes)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -Σ_k t_k log softmax(z)_k; logits (B, K), targets (B, K).

    Computed in float32 whatever the autocast dtype: log-softmax in bf16 loses the small
    differences the loss is made of.
    """
    return -(targets * torch.log_softmax(logits.float(), dim=-1)).sum(-1).mean()


def warmup_cosine(step: int, *, total_steps: int, warmup_steps: int, min_ratio: float = 0.0) -> float:
    """Learning-rate multiplier at ``step`` (0-based): linear warm-up, then a cosine to ``min_ratio``.

    Warm-up: (step + 1) / warmup_steps, so step 0 already moves and step warmup_steps - 1
    reaches 1. Then 1 → min_ratio along half a cosine, reaching min_ratio at total_steps.
    """
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"need 0 ≤ warmup_steps < total_steps, got {warmup_steps} and {total_steps}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min((step - warmup_steps) / (total_steps - warmup_steps), 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_adamw(model: nn.Module, lr: float, weight_decay: float, device: torch.device) -> torch.optim.AdamW:
    """AdamW that decays only the weight matrices of Linear and Conv layers.

    Biases, LayerNorm gains, the CLS token and the position table are left alone: shrinking
    them towards 0 has no regularising meaning (a LayerNorm gain of 0 switches a feature off).
    """
    decay = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if id(p) in decay], "weight_decay": weight_decay},
              {"params": [p for p in params if id(p) not in decay], "weight_decay": 0.0}]
    if device.type == "cuda":
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    return torch.optim.AdamW(groups, lr=lr, foreach=True)


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------

# Recipe fields a resumed run may change: they change how the steps run, not what is trained.
RESUMABLE_CHANGES = ("compile", "bf16")


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` with ``torch.save`` atomically: a crash mid-write leaves the old file intact.

    The bytes go to a temporary file in the same folder, are flushed to disk, and then
    ``os.replace`` swaps it in (one rename, atomic on POSIX and Windows).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors land on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train with checkpoint={str(path)!r} first")
    return torch.load(path, map_location="cpu", weights_only=True)


# ----------------------------------------------------------------------------------------------
# Distributed helpers (torchrun sets RANK, WORLD_SIZE and LOCAL_RANK)
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dist:
    """This process's place in the job: rank, world size, and its device."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    distributed: bool = False     # a process group is up (torchrun), even with world = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(prefer_device: str | None = None) -> Dist:
    """Join the torchrun job if there is one (NCCL on GPUs, gloo on CPUs), else run alone.

    Under torchrun the process group is set up even for one process, so the DDP path is
    the same code whether it runs on one GPU or eight.
    """
    if "LOCAL_RANK" not in os.environ:        # not started by torchrun
        return Dist(device=get_device(prefer_device))
    local_rank = int(os.environ["LOCAL_RANK"])
    use_cuda = torch.cuda.is_available() and prefer_device != "cpu"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo",
                            device_id=torch.device("cuda", local_rank) if use_cuda else None)
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(), device=device, distributed=True)


def shard(order: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """Every ``world``-th index from ``rank`` on, after padding the order to a multiple of ``world``
    with its own first indices (as ``DistributedSampler`` does), so every rank gets as many."""
    pad = -len(order) % world
    if pad:
        order = torch.cat([order, order[:pad]])
    return order[rank::world]


# ----------------------------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------------------------

def _images_to_device(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, 3) channels-last, as the loaders return them → uint8 (N, 3, H, W) on ``device``."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 colour images (N, H, W, 3), got {images.dtype} {images.shape}")
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).contiguous()


class CifarTrainer:
    """Trains a :class:`VisionTransformer` on CIFAR-shaped data with one :class:`Recipe`.

    Another model or another loss is a subclass that overrides :meth:`build_model` or
    :meth:`compute_loss` (DeiT's distillation, the Swin chapter); everything else is shared.

    Args:
        recipe: the hyper-parameters.
        x_train, y_train, x_test, y_test: uint8 (N, 32, 32, 3) images and int (N,) labels,
            as ``vitcourse.data.load_cifar10()`` returns them (``recipe.*_subset`` trims them).
        dist_info: this process's rank / world / device (``init_distributed()``); default: the
            best local device, alone.

    ``fit()`` trains to the end (or to ``until_step``), evaluating after every epoch;
    ``history()`` is the per-epoch table; ``evaluate()`` gives loss, accuracy and the
    confusion matrix; ``save`` / ``load`` checkpoint everything a resumed run needs.
    """

    def __init__(self, recipe: Recipe, x_train, y_train, x_test, y_test, dist_info: Dist | None = None):
        self.recipe = r = recipe
        self.dist = dist_info or Dist(device=get_device())
        self.device = device = _indexed(self.dist.device)
        self.x_train = _images_to_device(x_train[:r.train_subset], device)
        self.y_train = torch.as_tensor(np.asarray(y_train[:r.train_subset]), dtype=torch.int64, device=device)
        self.x_test = _images_to_device(x_test[:r.test_subset], device)
        self.y_test = torch.as_tensor(np.asarray(y_test[:r.test_subset]), dtype=torch.int64, device=device)
        if r.batch_size % self.dist.world:
            raise ValueError(f"batch_size={r.batch_size} must divide evenly over {self.dist.world} processes")
        self.local_batch = r.batch_size // self.dist.world
        self.steps_per_epoch = math.ceil(len(self.y_train) / self.dist.world) // self.local_batch
        if self.steps_per_epoch == 0:
            raise ValueError(f"batch_size={r.batch_size} is larger than the {len(self.y_train)} training images; "
                             f"use a smaller batch or more images")
        self.total_steps = self.steps_per_epoch * r.epochs
        self.warmup_steps = round(r.warmup_epochs * self.steps_per_epoch)

        torch.manual_seed(r.seed + self.dist.rank)          # initial weights (DDP copies rank 0's) and dropout
        self.model = self.build_model().to(device)
        self.optimizer = make_adamw(self.model, r.lr, r.weight_decay, device)
        self.augment = BatchAugment(crop_padding=r.crop_padding, flip=r.flip, mixup_alpha=r.mixup_alpha,
                                    cutmix_alpha=r.cutmix_alpha, mix_prob=r.mix_prob,
                                    seed=r.seed * 1000 + self.dist.rank, device=device)
        self.amp_dtype = autocast_dtype(device, r.bf16)
        self.step = 0
        self.rows: list[dict] = []

        network = self.model
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel
            network = DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None)
        self.use_compile = device.type == "cuda" if r.compile is None else r.compile
        self.network = torch.compile(network) if self.use_compile else network

    # -- what is trained, and on what loss (subclasses change these two) ---------------------------

    def build_model(self) -> nn.Module:
        """The network to train: normalised images (B, 3, H, W) → logits (B, K). Called right after
        ``torch.manual_seed(recipe.seed + rank)``, so a seed fixes the initial weights."""
        return VisionTransformer(self.recipe.model)

    def compute_loss(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss (0-d) of one augmented, normalised batch against its (B, K) soft targets;
        the caller runs it under autocast and calls backward."""
        return soft_cross_entropy(self.network(images), targets)

    # -- one step ------------------------------------------------------------------------------

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype else nullcontext()

    def train_step(self, images_uint8: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One optimiser step on a batch: uint8 (B, 3, H, W) and labels (B,) on the device → the loss (0-d)."""
        self.model.train()
        self.augment.train()
        targets = smooth_targets(labels, self.recipe.model.num_classes, self.recipe.label_smoothing)
        images, targets = self.augment(to_unit_float(images_uint8), targets)
        factor = warmup_cosine(self.step, total_steps=self.total_steps, warmup_steps=self.warmup_steps,
                               min_ratio=self.recipe.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = self.recipe.lr * factor
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._forward_backward(normalize(images), targets)
        if self.recipe.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.grad_clip)
        self.optimizer.step()
        self.step += 1
        return loss.detach()

    def _forward_backward(self, images, targets):
        try:
            with self.autocast():
                loss = self.compute_loss(images, targets)
            loss.backward()
            return loss
        except Exception as error:   # noqa: BLE001 — only a compiler failure is caught; eager re-raises real bugs
            if not self.use_compile:
                raise
            warnings.warn(f"torch.compile failed here ({type(error).__name__}: {str(error)[:200]}); "
                          f"training eagerly instead", stacklevel=3)
            self.use_compile = False
            self.network = self.network._orig_mod
            self.optimizer.zero_grad(set_to_none=True)
            return self._forward_backward(images, targets)

    # -- epochs --------------------------------------------------------------------------------

    def epoch_batches(self, epoch: int) -> list[torch.Tensor]:
        """This rank's index batches of ``epoch``: a shuffle seeded by (seed, epoch), sharded, last partial dropped."""
        order = torch.randperm(len(self.y_train), generator=torch.Generator().manual_seed(self.recipe.seed * 100_003 + epoch))
        mine = shard(order, self.dist.rank, self.dist.world).to(self.device)
        return list(mine[: self.steps_per_epoch * self.local_batch].split(self.local_batch))

    def fit(self, until_step: int | None = None, progress: bool = True, checkpoint: str | os.PathLike | None = None) -> pd.DataFrame:
        """Train from the current step to ``until_step`` (default: the end); returns :meth:`history`.

        After every full epoch: evaluate on the test images, add a row to the history and, if
        ``checkpoint`` is given, save one there.
        """
        end = self.total_steps if until_step is None else min(until_step, self.total_steps)
        bar = progress_bar(end, "training", initial=self.step, enabled=progress and self.dist.main)
        while self.step < end:
            epoch, offset = divmod(self.step, self.steps_per_epoch)
            start, seen = time.perf_counter(), 0
            loss_sum = torch.zeros((), device=self.device)   # on the device: .item() per step would stall a GPU
            for index in self.epoch_batches(epoch)[offset:]:
                loss_sum += self.train_step(self.x_train[index], self.y_train[index])
                seen += 1
                bar.update()
                if self.step >= end:
                    break
            if self.step % self.steps_per_epoch == 0:        # a whole epoch: evaluate and record it
                self._end_epoch(epoch, loss_sum / seen, time.perf_counter() - start, seen, checkpoint)
                bar.set_postfix(test_acc=f"{self.rows[-1]['test_acc']:.3f}")
        bar.close()
        return self.history()

    def _end_epoch(self, epoch, mean_loss, seconds, steps, checkpoint):
        if self.dist.distributed:
            dist.all_reduce(mean_loss)
            mean_loss /= self.dist.world
        test_loss, test_acc, _ = self.evaluate()
        self.rows.append({"epoch": epoch + 1, "train_loss": float(mean_loss), "test_loss": test_loss,
                          "test_acc": test_acc, "lr": self.optimizer.param_groups[0]["lr"],
                          "seconds": seconds, "images_per_s": steps * self.recipe.batch_size / seconds})
        if checkpoint is not None:
            self.save(checkpoint)

    def history(self) -> pd.DataFrame:
        """One row per finished epoch: train/test loss, test accuracy, learning rate, time, images/s."""
        columns = ["epoch", "train_loss", "test_loss", "test_acc", "lr", "seconds", "images_per_s"]
        return pd.DataFrame(self.rows, columns=columns).set_index("epoch")

    @torch.inference_mode()
    def evaluate(self, batch_size: int = 1000) -> tuple[float, float, np.ndarray]:
        """(mean cross-entropy, accuracy, confusion matrix (K, K): rows true, columns predicted) on
        the test images, unaugmented, in eval mode; with several processes each does a share."""
        classes = self.recipe.model.num_classes
        self.model.eval()
        mine = torch.arange(self.dist.rank, len(self.y_test), self.dist.world, device=self.device)  # no padding: exact sums
        loss_sum = torch.zeros((), device=self.device)
        confusion = torch.zeros(classes * classes, dtype=torch.int64, device=self.device)
        for index in mine.split(batch_size):
            with self.autocast():
                logits = self.model(normalize(to_unit_float(self.x_test[index]))).float()
            labels = self.y_test[index]
            loss_sum += F.cross_entropy(logits, labels, reduction="sum")
            confusion += torch.bincount(labels * classes + logits.argmax(-1), minlength=classes * classes)
        if self.dist.distributed:
            for total in (loss_sum, confusion):
                dist.all_reduce(total)
        confusion = confusion.view(classes, classes).cpu().numpy()
        count = int(confusion.sum())      # Python numbers: a checkpoint of the history must load with weights_only
        return float(loss_sum) / count, float(np.trace(confusion)) / count, confusion

    # -- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict:
        state = {"recipe": asdict(self.recipe), "step": self.step, "rows": self.rows,
                 "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "augment_rng": self.augment.rng_state(), "torch_rng": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict) -> None:
        # The recipe must match, except how it runs: compiled or not, bf16 or not.
        saved, ours = state["recipe"], asdict(self.recipe)
        differ = sorted(k for k in ours if k not in RESUMABLE_CHANGES and saved.get(k) != ours[k])
        if differ:
            raise ValueError("the checkpoint was trained with a different recipe: "
                             + "; ".join(f"{k}: checkpoint {saved.get(k)!r}, now {ours[k]!r}" for k in differ)
                             + ". Resume with the checkpoint's recipe, or start a new run")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.augment.set_rng_state(state["augment_rng"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.step, self.rows = state["step"], list(state["rows"])

    def save(self, path: str | os.PathLike) -> None:
        """Checkpoint (rank 0 writes; every rank waits for it)."""
        if self.dist.main:
            save_checkpoint(path, self.state_dict())
        if self.dist.distributed:
            dist.barrier()

    def load(self, path: str | os.PathLike) -> None:
        self.load_state_dict(load_checkpoint(path))


def per_class_table(confusion: np.ndarray, class_names) -> pd.DataFrame:
    """Per-class test accuracy from a confusion matrix (rows true, columns predicted).

    Columns: images, correct, accuracy, and the class each one is most often mistaken for.
    """
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1] or len(class_names) != len(confusion):
        raise ValueError(f"need a square (K, K) confusion matrix and K class names, got {confusion.shape} "
                         f"and {len(class_names)} names")
    off_diagonal = confusion - np.diag(np.diag(confusion))
    table = pd.DataFrame({
        "images": confusion.sum(1), "correct": np.diag(confusion),
        "accuracy": np.diag(confusion) / np.maximum(confusion.sum(1), 1),
        "most confused with": [class_names[j] for j in off_diagonal.argmax(1)],
    }, index=pd.Index(list(class_names), name="class"))
    return table


# ----------------------------------------------------------------------------------------------
# Command line: python -m vitcourse.cifar / torchrun ... -m vitcourse.cifar
# ----------------------------------------------------------------------------------------------

def random_cifar_like(n_train: int, n_test: int, seed: int = 0):
    """Random uint8 (N, 32, 32, 3) images and labels: for smoke tests and throughput, not learning."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n_train),
            rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n_test))


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m vitcourse.cifar", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=["quick", "full"], help="recipe preset (default: $VITCOURSE_PROFILE, "
                        "else full on a CUDA GPU and quick elsewhere)")
    parser.add_argument("--data", choices=["cifar10", "random"], default="cifar10",
                        help="real CIFAR-10 (the offline stand-in in the quick profile), or random tensors")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, help="global batch, split over the processes")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--warmup-epochs", type=float)
    parser.add_argument("--train-subset", type=int)
    parser.add_argument("--test-subset", type=int)
    parser.add_argument("--pool", choices=["cls", "mean"])
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--device", help="cpu or cuda (default: the best available)")
    parser.add_argument("--max-steps", type=int, help="stop after this many steps (smoke tests)")
    parser.add_argument("--checkpoint", type=Path, help="save here after every epoch")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    parser.add_argument("--summary", type=Path, help="write the final metrics here as JSON")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = _parse_args(argv)
    info = init_distributed(args.device)
    try:
        profile = Profile(args.profile, "--profile") if args.profile else get_profile()
        overrides = {name: value for name, value in (
            ("epochs", args.epochs), ("batch_size", args.batch_size), ("lr", args.lr), ("seed", args.seed),
            ("warmup_epochs", args.warmup_epochs),
            ("train_subset", args.train_subset), ("test_subset", args.test_subset),
            ("compile", args.compile), ("bf16", args.bf16)) if value is not None}
        recipe = recipe_for(profile, **overrides)
        if args.pool:
            recipe = replace(recipe, model=replace(recipe.model, pool=args.pool))
        if args.data == "random":
            n_train, n_test = recipe.train_subset or 50_000, recipe.test_subset or 10_000
            arrays, class_names, data_name = random_cifar_like(n_train, n_test), [str(k) for k in range(10)], "random"
        else:
            from vitcourse.data import load_cifar10
            data = load_cifar10()
            arrays, class_names, data_name = data.arrays(), data.class_names, data.name
        trainer = CifarTrainer(recipe, *arrays, dist_info=info)
        if args.resume and args.checkpoint and args.checkpoint.exists():
            trainer.load(args.checkpoint)
        start = time.perf_counter()
        history = trainer.fit(until_step=args.max_steps, progress=not args.no_progress, checkpoint=args.checkpoint)
        test_loss, test_acc, confusion = trainer.evaluate()
        _check_replicas_agree(trainer.model, info)
        summary = {"profile": profile.name, "device": info.device.type, "processes": info.world, "data": data_name,
                   "steps": trainer.step, "seconds": time.perf_counter() - start, "test_loss": test_loss,
                   "test_acc": test_acc, "compiled": trainer.use_compile, "bf16": trainer.amp_dtype is not None,
                   "param_checksum": _param_checksum(trainer.model)}
        if info.main:
            print(history.round(4).to_string() if len(history) else "(no full epoch)")
            print(per_class_table(confusion, class_names).round(3).to_string())
            print(json.dumps(summary))
            if args.summary:
                args.summary.write_text(json.dumps(summary, indent=2))
        return summary
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@torch.no_grad()
def _param_checksum(model: nn.Module) -> float:
    return float(sum(p.double().sum() for p in model.parameters()))


def _check_replicas_agree(model: nn.Module, info: Dist) -> None:
    """DDP keeps every process's copy identical; verify it once at the end (cheap, and loud if not)."""
    if not info.distributed:
        return
    checksum = torch.tensor([_param_checksum(model)], dtype=torch.float64, device=info.device)
    low, high = checksum.clone(), checksum.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise RuntimeError(f"model replicas diverged across processes: parameter sums {float(low)} … {float(high)}")


if __name__ == "__main__":
    main(sys.argv[1:])
