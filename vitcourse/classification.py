"""Classification as a task of the training engine: the ViT, Swin and the DeiT teacher learn labels.

Each step a batch of uint8 images is augmented on the device (:class:`vitcourse.augment.BatchAugment`:
crops, flips, mixup/CutMix), its labels become smoothed target distributions
(:func:`smooth_targets`), and the model's logits meet them in :func:`soft_cross_entropy`. After
every epoch the model is evaluated on the test images: loss, accuracy, confusion matrix
(:func:`per_class_table` reads it per class).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from vitcourse.augment import BatchAugment, to_unit_float
from vitcourse.engine import Task

if TYPE_CHECKING:
    from vitcourse.engine import Trainer


class ClassifierConfig(Protocol):
    """What a classification recipe reads of its model's config: ``ViTConfig`` and ``SwinConfig`` both are one."""

    image_size: int
    num_classes: int


# ----------------------------------------------------------------------------------------------
# Targets and loss
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


# ----------------------------------------------------------------------------------------------
# The task
# ----------------------------------------------------------------------------------------------

class ClassificationTask(Task):
    """Learn the labels: augmented, label-smoothed batches, soft cross-entropy, test evaluation per epoch.

    Args:
        build_model: returns the network, normalised images (B, 3, H, W) → logits (B, K); called
            right after the trainer seeds torch's generator, so a seed fixes the initial weights.
        normalize: images in [0, 1] → the network's inputs (the data set's channel statistics).
        test_every_epoch: False tests after the last epoch only, leaving ``test_loss`` and
            ``test_acc`` empty (NaN) in the other rows of the history: on a CPU, scoring the test
            images after each of many short epochs can cost a quarter of a small model's training.

    Reads ``label_smoothing``, ``crop_padding``, ``flip``, ``mixup_alpha``, ``cutmix_alpha``,
    ``mix_prob`` and ``model.num_classes`` from the trainer's recipe.
    """

    columns = ("train_loss", "test_loss", "test_acc", "lr")
    progress_metric = "test_acc"

    def __init__(self, build_model: Callable[[], nn.Module], normalize: Callable[[torch.Tensor], torch.Tensor],
                 *, test_every_epoch: bool = True):
        self.build_model, self.normalize = build_model, normalize
        self.test_every_epoch = test_every_epoch

    def build(self, trainer: Trainer) -> nn.Module:
        r = trainer.recipe
        if trainer.y_train is None or trainer.x_test is None or trainer.y_test is None:
            raise ValueError("classification needs training labels and test images with labels: "
                             "pass x_train, y_train, x_test, y_test")
        self.num_classes = r.model.num_classes
        model = self.build_model()
        self.augment = BatchAugment(crop_padding=r.crop_padding, flip=r.flip, mixup_alpha=r.mixup_alpha,
                                    cutmix_alpha=r.cutmix_alpha, mix_prob=r.mix_prob,
                                    seed=r.seed * 1000 + trainer.dist.rank, device=trainer.device)
        return model

    def prepare(self, trainer: Trainer, images_uint8: torch.Tensor,
                labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (B, 3, H, W), labels (B,) → augmented, normalised images
        and target distributions (B, K)."""
        self.augment.train()
        smoothing = trainer.recipe.label_smoothing
        targets = smooth_targets(labels, self.num_classes, smoothing)
        images, targets = self.augment(to_unit_float(images_uint8), targets)
        return self.normalize(images), targets

    def loss(self, trainer: Trainer, images: torch.Tensor,
             targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Soft cross-entropy of the network's logits (B, K) and the targets (B, K)."""
        return {"loss": soft_cross_entropy(trainer.network(images), targets)}

    def epoch_row(self, trainer: Trainer, sums: dict[str, torch.Tensor], steps: int) -> dict:
        train_loss = float(sums["loss"] / steps)
        if not self.test_every_epoch and trainer.step < trainer.total_steps:
            return {"train_loss": train_loss, "test_loss": math.nan, "test_acc": math.nan}
        test_loss, test_acc, _ = trainer.evaluate()
        return {"train_loss": train_loss, "test_loss": test_loss, "test_acc": test_acc}

    def test_batches(self, trainer: Trainer, batch_size: int):
        """This process's share of the test set, unpadded (so sums over processes are exact):
        (normalised images (b, 3, H, W), labels (b,)) in batches of ``batch_size``."""
        mine = torch.arange(trainer.dist.rank, len(trainer.y_test), trainer.dist.world, device=trainer.device)
        for index in mine.split(batch_size):
            yield self.normalize(to_unit_float(trainer.x_test[index])), trainer.y_test[index]

    @torch.inference_mode()
    def evaluate(self, trainer: Trainer, batch_size: int = 1000) -> tuple[float, float, np.ndarray]:
        """(mean cross-entropy, accuracy, confusion matrix (K, K): rows true, columns predicted) on
        the test images, unaugmented, in eval mode; with several processes each does a share."""
        classes = self.num_classes
        trainer.model.eval()
        loss_sum = torch.zeros((), device=trainer.device)
        confusion = torch.zeros(classes * classes, dtype=torch.int64, device=trainer.device)
        for images, labels in self.test_batches(trainer, batch_size):
            with trainer.autocast():
                logits = trainer.model(images).float()
            loss_sum += F.cross_entropy(logits, labels, reduction="sum")
            confusion += torch.bincount(labels * classes + logits.argmax(-1), minlength=classes * classes)
        if trainer.dist.distributed:
            for total in (loss_sum, confusion):
                dist.all_reduce(total)
        confusion = confusion.view(classes, classes).cpu().numpy()
        count = int(confusion.sum())      # Python numbers: a checkpoint of the history must load with weights_only
        return float(loss_sum) / count, float(np.trace(confusion)) / count, confusion

    def state_dict(self) -> dict:
        return {"augment_rng": self.augment.rng_state()}

    def load_state_dict(self, state: dict) -> None:
        self.augment.set_rng_state(state["augment_rng"])


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
