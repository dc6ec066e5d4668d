"""CIFAR-10 with the paper's ViT: the data's statistics, the models sized for 32 × 32, the recipe, a CLI.

The training itself is the engine's (:class:`vitcourse.engine.Trainer` with
:class:`vitcourse.classification.ClassificationTask`); :class:`CifarTrainer` puts them together
for CIFAR-shaped data. What makes a run fast — images on the device as uint8, augmentation
as batched tensor ops (:mod:`vitcourse.augment`), fused AdamW with warm-up and cosine, bf16
autocast, ``torch.compile`` with an eager fallback, atomic checkpoints, DDP — is described
in :mod:`vitcourse.engine`.

Command line (``python -m vitcourse.cifar --help``)::

    python -m vitcourse.cifar --profile full --checkpoint runs/vit.pt
    python -m torch.distributed.run --nproc_per_node=8 -m vitcourse.cifar --profile full
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn

from vitcourse.classification import ClassificationTask, ClassifierConfig, per_class_table
from vitcourse.engine import (Dist, Trainer, add_run_arguments, check_replicas_agree, images_to_device,
                              init_distributed, labels_to_device, param_checksum, resume_if_asked)
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
    """Every knob of a classification run on CIFAR. ``full_vit_recipe()`` and ``quick_vit_recipe()`` are
    the two presets; ``model`` is the network's config, a ViTConfig or a SwinConfig.

    ``batch_size`` is the global batch: with N processes each takes ``batch_size / N``.
    ``train_subset`` / ``test_subset`` train and test on the first images only (None: all).
    ``compile`` and ``bf16``: None means "on CUDA only".
    """

    model: ClassifierConfig = CIFAR_VIT      # a ViTConfig, or a SwinConfig (chapter 9)
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


def full_vit_recipe(**overrides) -> Recipe:
    """The GPU recipe: 200 epochs of the 4.77 M-parameter CIFAR ViT on all 50,000 images, batches of 1,024.

    lr 1e-3 for batch 1,024 follows DeiT's rule (5e-4 × batch / 512). Batch 1,024 rather than
    512 because at 512 an H100 step is bound by the host's launch overhead (27,400 images/s,
    eager or compiled alike), at 1,024 by the GPU (50,900 images/s): bench/vit_throughput.py.
    """
    return replace(Recipe(), **overrides)


def quick_vit_recipe(**overrides) -> Recipe:
    """A small fixed budget for a 2-core CPU: a 0.2 M-parameter ViT, 10,000 images, 3 epochs."""
    quick = Recipe(model=QUICK_VIT, epochs=3, batch_size=128, lr=2e-3, warmup_epochs=1.0,
                   mixup_alpha=0.0, cutmix_alpha=0.0, mix_prob=0.0, train_subset=10_000, test_subset=2_000)
    return replace(quick, **overrides)


def vit_recipe_for(profile: Profile | None = None, **overrides) -> Recipe:
    """``quick_vit_recipe`` in the quick profile, ``full_vit_recipe`` in the full one."""
    profile = profile or get_profile()
    return profile.pick(quick=quick_vit_recipe, full=full_vit_recipe)(**overrides)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] → zero mean, unit spread per channel (CIFAR-10's statistics)."""
    mean = torch.tensor(CIFAR_MEAN, device=images.device, dtype=images.dtype)[:, None, None]
    std = torch.tensor(CIFAR_STD, device=images.device, dtype=images.dtype)[:, None, None]
    return (images - mean) / std


# ----------------------------------------------------------------------------------------------
# Training on CIFAR: the engine with the classification task
# ----------------------------------------------------------------------------------------------

class CifarTrainer(Trainer):
    """The engine with the classification task, on CIFAR-shaped data: :class:`vitcourse.engine.Trainer`.

    Args:
        recipe: the hyper-parameters (:class:`Recipe`).
        x_train, y_train, x_test, y_test: uint8 (N, 32, 32, 3) images and int (N,) labels,
            as ``vitcourse.data.load_cifar10()`` returns them (``recipe.*_subset`` trims them).
        dist_info: this process's rank / world / device (``init_distributed()``); default: the
            best local device, alone.
        build_model: the network to train (default: a :class:`VisionTransformer` of ``recipe.model``).
        task: another task on the same data (DeiT's distillation); ``build_model`` is then ignored.
    """

    def __init__(self, recipe: Recipe, x_train, y_train, x_test, y_test, dist_info: Dist | None = None, *,
                 build_model: Callable[[], nn.Module] | None = None, task: ClassificationTask | None = None):
        task = task or ClassificationTask(build_model or (lambda: VisionTransformer(recipe.model)), normalize)
        super().__init__(task, recipe, x_train, y_train, x_test, y_test, dist_info=dist_info)


# ----------------------------------------------------------------------------------------------
# The recipe's regularisers, ablated: no augmentation against crop + flip + label smoothing
# ----------------------------------------------------------------------------------------------

NO_AUGMENTATION = "no augmentation"
CROP_FLIP_SMOOTH = "crop + flip + smoothing"


def ablation_arms(base: Recipe) -> dict[str, Recipe]:
    """The ablation's two arms of ``base``, alike in all else (model, data, seed).

    ``NO_AUGMENTATION``: no crop, no flip, no label smoothing, no mixing.
    ``CROP_FLIP_SMOOTH``: the full recipe's crop (padding 4), flip and label
    smoothing 0.1, still without mixup or CutMix.
    """
    no_mixing = dict(mixup_alpha=0.0, cutmix_alpha=0.0, mix_prob=0.0)
    full = full_vit_recipe()
    return {
        NO_AUGMENTATION: replace(base, crop_padding=0, flip=False, label_smoothing=0.0,
                                 **no_mixing),
        CROP_FLIP_SMOOTH: replace(base, crop_padding=full.crop_padding, flip=full.flip,
                                  label_smoothing=full.label_smoothing, **no_mixing),
    }


def ablation_recipe(**overrides) -> Recipe:
    """The ablation's budget, the same in both profiles: the quick ViT on 600 training images for
    15 epochs in batches of 50, tested on 500, eager and float32 (about 12 CPU-seconds a run)."""
    settings = dict(train_subset=600, test_subset=500, epochs=15, batch_size=50, warmup_epochs=2.0,
                    compile=False, bf16=False)
    return quick_vit_recipe(**{**settings, **overrides})


def evaluate_on(trainer: Trainer, images, labels) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``trainer``'s model on other images, exactly as it is
    tested: unaugmented, hard labels, eval mode. images: uint8 (N, 3, H, W) on the trainer's device
    (``trainer.x_train``), or (N, H, W, 3) arrays as the data sets give them; labels (N,)."""
    if len(images) != len(labels):
        raise ValueError(f"got {len(images)} images but {len(labels)} labels; pass one label per image")
    if isinstance(images, torch.Tensor):
        images, labels = images.to(trainer.device), torch.as_tensor(labels, dtype=torch.int64).to(trainer.device)
    else:
        images, labels = images_to_device(images, trainer.device), labels_to_device(labels, trainer.device)
    classes = trainer.recipe.model.num_classes
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < classes:
        raise ValueError(f"labels must be class indices 0..{classes - 1}, got {int(labels.min())}.."
                         f"{int(labels.max())}; pass the data set's own labels")
    saved = trainer.x_test, trainer.y_test
    trainer.x_test, trainer.y_test = images, labels        # the task's own evaluation, on these images
    try:
        loss, accuracy, _ = trainer.evaluate()
    finally:
        trainer.x_test, trainer.y_test = saved
    return loss, accuracy


def run_ablation(base: Recipe, x_train, y_train, x_test, y_test, seeds=(0, 1)) -> pd.DataFrame:
    """Train both :func:`ablation_arms` of ``base`` once per seed; one row per (arm, seed, epoch).

    Columns: arm, seed, epoch, train_loss and train_acc (on the training images, evaluated as the
    test images are: unaugmented, hard labels, eval mode), test_loss, test_acc.
    """
    if not seeds:
        raise ValueError("run_ablation needs at least one seed, e.g. seeds=(0, 1)")
    rows = []
    for arm, recipe in ablation_arms(base).items():
        for seed in seeds:
            trainer = CifarTrainer(replace(recipe, seed=seed), x_train, y_train, x_test, y_test)
            rows += _ablation_run(trainer, arm, seed)
    return pd.DataFrame(rows)


def _ablation_run(trainer: Trainer, arm: str, seed: int) -> list[dict]:
    """Train ``trainer`` to the end, evaluating on its own training images after every epoch."""
    rows = []
    for epoch in range(1, trainer.recipe.epochs + 1):
        trainer.fit(until_step=epoch * trainer.steps_per_epoch, progress=False)
        train_loss, train_acc = evaluate_on(trainer, trainer.x_train, trainer.y_train)
        tested = trainer.history().iloc[-1]
        rows.append({"arm": arm, "seed": seed, "epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                     "test_loss": float(tested["test_loss"]), "test_acc": float(tested["test_acc"])})
    return rows


def ablation_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """The last epoch of :func:`run_ablation`'s runs, averaged over the seeds: one row per arm.

    Columns: train_loss, test_loss, gap (test minus train loss), train_acc, test_acc, and
    gap_min / gap_max, the smallest and largest gap among the arm's seeds.
    """
    last = _last_epoch(runs)
    summary = last.groupby("arm", sort=False)[["train_loss", "test_loss", "gap", "train_acc", "test_acc"]].mean()
    return summary.join(last.groupby("arm", sort=False)["gap"].agg(gap_min="min", gap_max="max"))


def _last_epoch(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of the last epoch, with the gap (test minus train loss) added."""
    missing = {"arm", "seed", "epoch", "train_loss", "test_loss", "train_acc", "test_acc"} - set(runs.columns)
    if missing:
        raise ValueError(f"not a run_ablation table: no column {', '.join(sorted(missing))}")
    last = runs[runs["epoch"] == runs["epoch"].max()]
    return last.assign(gap=last["test_loss"] - last["train_loss"])


def ablation_findings(runs: pd.DataFrame) -> dict[str, str]:
    """What :func:`run_ablation`'s runs show, as sentences: ``"gap"`` and ``"test"``.

    A claim is made only where every seed agrees (the arms' seed ranges do not overlap, or each
    seed's paired difference has one sign); otherwise the sentence says the run does not settle it.
    """
    from vitcourse.report import fmt, how_many

    last = _last_epoch(runs).set_index(["arm", "seed"])
    none, reg = last.loc[NO_AUGMENTATION], last.loc[CROP_FLIP_SMOOTH]
    seeds = how_many(len(none), len(none), "seed")        # "the one seed", "both seeds", "all 3 seeds"

    def span(gaps):
        low, high = fmt(gaps.min(), "loss"), fmt(gaps.max(), "loss")
        return low if low == high else f"{low} to {high}"

    if none["gap"].min() > reg["gap"].max():
        gap = (f"In {seeds} the gap between test and training loss was larger without "
               f"augmentation ({span(none['gap'])}) than with crop, flip and label smoothing "
               f"({span(reg['gap'])}): the regularised model fits its training images little better than "
               "images it never saw.")
    elif reg["gap"].min() > none["gap"].max():
        gap = (f"In {seeds} the gap was larger *with* crop, flip and label smoothing "
               f"({span(reg['gap'])}) than without ({span(none['gap'])}).")
    else:
        gap = (f"The gaps of the seeds overlap (without augmentation {span(none['gap'])}, with it "
               f"{span(reg['gap'])}): this run does not separate the two.")
    return {"gap": gap, "test": _test_finding(none, reg, seeds, fmt)}


def _test_finding(none: pd.DataFrame, reg: pd.DataFrame, seeds: str, fmt) -> str:
    """The sentence on test accuracy: which arm was ahead in every seed, and why, if either."""
    gain = (reg["test_acc"] - none["test_acc"]).loc[none.index]          # paired by seed
    ordered = sorted(gain.abs())
    low, high = (fmt(v, "points").lstrip("+") for v in (ordered[0], ordered[-1]))
    by = low if low == high else f"{low} to {high}"
    fit = (f"training accuracy {fmt(reg['train_acc'].mean(), 'acc')} with it against "
           f"{fmt(none['train_acc'].mean(), 'acc')} without")
    if (gain > 0).all():
        return (f"Test accuracy was higher with augmentation in {seeds} (by {by} points): "
                "the gap closed from the test side too.")
    if (gain < 0).all():
        return (f"Test accuracy was *lower* with augmentation in {seeds} (by {by} points): "
                f"on this budget the gap closed from the training side ({fit}).")
    return (f"Test accuracy moved both ways across the seeds ({fit}): this run does not say whether "
            "augmentation helps at this budget.")


def timed_fit(trainer: Trainer) -> float:
    """Train ``trainer`` to the end, printing nothing; return the run's seconds.

    On a CPU: this process's CPU seconds (training and the per-epoch test evaluations), which the
    other work of a shared machine does not inflate. On a GPU: the engine's own clock, the sum of
    its epochs' training seconds (``history()["seconds"]``).
    """
    start = time.process_time()
    trainer.fit(progress=False)
    if trainer.device.type == "cpu":
        return time.process_time() - start
    return float(trainer.history()["seconds"].sum())




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
    add_run_arguments(parser)
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
        recipe = vit_recipe_for(profile, **overrides)
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
        resumed_from = resume_if_asked(trainer, args)
        start = time.perf_counter()
        history = trainer.fit(until_step=args.max_steps, progress=not args.no_progress, checkpoint=args.checkpoint)
        test_loss, test_acc, confusion = trainer.evaluate()
        check_replicas_agree(trainer.model, info)
        summary = {"profile": profile.name, "device": info.device.type, "processes": info.world, "data": data_name,
                   "steps": trainer.step, "resumed_from_step": resumed_from,
                   "seconds": time.perf_counter() - start, "test_loss": test_loss,
                   "test_acc": test_acc, "compiled": trainer.use_compile, "bf16": trainer.amp_dtype is not None,
                   "param_checksum": param_checksum(trainer.model)}
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


if __name__ == "__main__":
    main(sys.argv[1:])
