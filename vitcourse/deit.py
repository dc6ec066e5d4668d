"""DeiT (Touvron et al., 2021): a ViT that learns from a teacher through a distillation token.

    images (B, C, H, W)
      → PatchEmbed                                                 (B, N, D)
      → prepend [CLS, DIST]: two learned vectors                    (B, N + 2, D)
      → + learned positions: one row each for CLS, DIST and every patch
      → the ViT's blocks and final LayerNorm (vitcourse.vit, unchanged)
      → head(row 0)       = cls_logits    trained on the true labels
        head_dist(row 1)  = dist_logits   trained on the teacher's output
      train mode: (cls_logits, dist_logits);  eval mode: their average (B, K)

:class:`DistilledViT` is a :class:`~vitcourse.vit.VisionTransformer` with those additions;
:func:`distillation_loss` is the paper's hard and soft objectives; :class:`CifarCNN` is the
course's convolutional teacher for CIFAR-shaped images; :class:`DistillationTask` is what the
training engine (:mod:`vitcourse.engine`) needs to train a student against a frozen teacher —
the classification task with another model and another loss. :class:`DistillationTrainer` and
:class:`ModelTrainer` put them together with the recipe of :mod:`vitcourse.cifar`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from vitcourse.cifar import CifarTrainer, Recipe, full_vit_recipe, normalize, quick_vit_recipe
from vitcourse.classification import ClassificationTask, soft_cross_entropy
from vitcourse.costs import param_count
from vitcourse.engine import Dist, Trainer
from vitcourse.profile import Profile, get_profile
from vitcourse.report import fmt
from vitcourse.stats import binomial_se, is_clear, standard_errors
from vitcourse.vit import ViTConfig, VisionTransformer, vit_config

DISTILLATION_MODES = ("hard", "soft")


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------

class DistilledViT(VisionTransformer):
    """A ViT with a distillation token beside the CLS token, and a second head to read it.

    images (B, C, H, W) → in train mode ``(cls_logits, dist_logits)``, two (B, K) tensors (the
    loss needs both); in eval mode one (B, K) tensor, the **average of the two heads' logits**
    (what DeiT reports at test time). :meth:`forward_heads` gives both in either mode.

    The blocks see T = N + 2 tokens: ``[CLS, DIST, patch 1, …, patch N]``. With
    ``config.cls_position`` (the default) both special tokens get their own position row (N + 2
    rows); without it neither does (N rows), as for the plain ViT's CLS token.

    Everything the plain ViT has is drawn from the random generator first and in the same order,
    so ``DistilledViT(c)`` and ``VisionTransformer(c)`` built after the same ``torch.manual_seed``
    start from the same weights; the distillation token, its position row and ``head_dist`` are
    drawn after them.
    """

    def __init__(self, config: ViTConfig | None = None):
        config = config or ViTConfig()
        if not config.has_cls:
            raise ValueError(f"DistilledViT reads a CLS and a distillation token, so it needs pool='cls'; "
                             f"got pool={config.pool!r}. Build it from replace(config, pool='cls')")
        super().__init__(config)
        c = self.config
        self.dist_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.head_dist = nn.Linear(c.dim, c.num_classes)
        if c.cls_position:
            # [CLS, DIST, patches]: keep the plain ViT's rows for CLS and the patches, add one for DIST.
            plain = self.pos_embed.detach()
            dist_row = nn.init.trunc_normal_(torch.empty_like(plain[:, :1]), std=0.02)
            self.pos_embed = nn.Parameter(torch.cat([plain[:, :1], dist_row, plain[:, 1:]], dim=1))
        self._reset_distillation_parts()

    @property
    def num_tokens(self) -> int:
        """Tokens the blocks see: the patches, the CLS token and the distillation token."""
        return self.config.num_patches + 2

    @torch.no_grad()
    def _reset_distillation_parts(self) -> None:
        nn.init.trunc_normal_(self.dist_token, std=0.02)
        nn.init.trunc_normal_(self.head_dist.weight, std=0.02)
        nn.init.zeros_(self.head_dist.bias)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The plain ViT's initialisation, and the same for the distillation token and head."""
        super().reset_parameters()
        if hasattr(self, "dist_token"):     # absent while VisionTransformer.__init__ runs
            self._reset_distillation_parts()

    def embed(self, images: torch.Tensor, any_size: bool = False) -> torch.Tensor:
        """images (B, C, H, W) → tokens (B, N + 2, D): [CLS, DIST, patches] plus
        positions, dropout."""
        if any_size:
            raise ValueError(
                "DistilledViT runs at its configured image size only (any_size=False)"
            )
        x = self.patch_embed(images)  # (B, N, D)
        special = torch.cat([self.cls_token, self.dist_token], dim=1).expand(
            len(x), -1, -1
        )  # (B, 2, D)
        if self.config.cls_position:
            x = torch.cat([special, x], dim=1) + self.pos_embed  # N + 2 position rows
        else:
            # positions on the patches only
            x = torch.cat([special, x + self.pos_embed], dim=1)
        return self.pos_drop(x)

    def forward_heads(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images → (cls_logits, dist_logits), each (B, K), in train and eval mode alike."""
        tokens, _ = self.forward_features(images)
        return self.head(tokens[:, 0]), self.head_dist(tokens[:, 1])

    def forward(self, images: torch.Tensor):
        cls_logits, dist_logits = self.forward_heads(images)
        if self.training:
            return cls_logits, dist_logits
        return (cls_logits + dist_logits) / 2


def distilled_param_count(config: ViTConfig) -> int:
    """Trainable parameters of ``DistilledViT(config)``: the plain ViT's (``costs.param_count``)
    plus the distillation token D, its position row D (with ``cls_position``) and the second
    head D·K + K."""
    d, k = config.dim, config.num_classes
    return param_count(config) + d + d * int(config.cls_position) + d * k + k


def deit_config(name: str, **overrides) -> ViTConfig:
    """The DeiT sizes by name: ``"Ti"``, ``"S"`` or ``"B"`` (16×16 patches, 224×224, 1000 classes).

    DeiT's models are the ViT's shapes (``vit_config``), with Ti and S added by the DeiT paper:
    Ti = D 192, 3 heads; S = D 384, 6 heads; B = D 768, 12 heads; all 12 blocks deep.
    """
    if name not in ("Ti", "S", "B"):
        raise ValueError(f"unknown DeiT size {name!r}; choose 'Ti', 'S' or 'B'")
    return vit_config(f"{name}/16", **overrides)


# ----------------------------------------------------------------------------------------------
# The loss
# ----------------------------------------------------------------------------------------------


def distillation_loss(
    cls_logits: torch.Tensor,
    dist_logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor,
    mode: str = "hard",
    tau: float = 1.0,
    alpha: float = 0.5,
) -> torch.Tensor:
    """DeiT's objective for the two heads: the CLS head learns the labels, the
    distillation head the teacher.

    Args:
        cls_logits, dist_logits: the student's two heads, (B, K) each (train-mode
        output of
            :class:`DistilledViT`).
        labels: the true classes, int64 (B,); or target distributions (B, K) whose rows
        sum to 1
            (label smoothing, mixup), for which CE is -Σ_k t_k log softmax(z)_k.
        teacher_logits: (B, K). Detached here: no gradient ever reaches the teacher.
        mode: ``"hard"`` or ``"soft"``.
        tau, alpha: temperature τ > 0 and weight α in [0, 1] of the soft objective.
            The hard objective has fixed ½ / ½ weights and no temperature, so both are
            ignored there.

    Returns the mean over the batch (a 0-d float32 tensor):

    * hard: ½ CE(cls, y) + ½ CE(dist, y_t), with y_t = argmax_k teacher_k, the
      teacher's decision;
    * soft: (1 - α) CE(cls, y) + α τ² KL(softmax(teacher/τ) ‖ softmax(dist/τ)), the KL
      summed over the K classes (the paper's form; τ² keeps the gradient's size
      independent of τ).
    """
    if mode not in DISTILLATION_MODES:
        raise ValueError(f"mode must be 'hard' or 'soft', got {mode!r}")
    shapes = {
        name: tuple(t.shape)
        for name, t in (
            ("cls_logits", cls_logits),
            ("dist_logits", dist_logits),
            ("teacher_logits", teacher_logits),
        )
    }
    if len(set(shapes.values())) != 1 or cls_logits.dim() != 2:
        raise ValueError(
            "cls_logits, dist_logits and teacher_logits must be (B, K) logits of one "
            f"shape, got {', '.join(f'{n} {s}' for n, s in shapes.items())}. Pass the "
            "student's train-mode output (a pair), not its eval-mode average"
        )
    batch, classes = cls_logits.shape
    if labels.shape == (batch,) and not torch.is_floating_point(labels):
        true_loss = F.cross_entropy(cls_logits.float(), labels.long())
    elif labels.shape == (batch, classes) and torch.is_floating_point(labels):
        true_loss = soft_cross_entropy(cls_logits, labels)
    else:
        raise ValueError(
            f"labels must be class indices (B,) = ({batch},) of an integer dtype, or "
            f"target distributions (B, K) = ({batch}, {classes}) of floats; got "
            f"{labels.dtype} {tuple(labels.shape)}"
        )
    teacher_logits = teacher_logits.detach().float()
    if mode == "hard":
        return 0.5 * true_loss + 0.5 * F.cross_entropy(
            dist_logits.float(), teacher_logits.argmax(dim=-1)
        )
    if not tau > 0:
        raise ValueError(f"tau (the temperature) must be > 0, got {tau!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(
            f"alpha (the weight of the teacher's term) must be in [0, 1], got {alpha!r}"
        )
    # KL(p_t ‖ p_s) = Σ_k p_t (log p_t - log p_s), summed over classes, averaged over
    # the batch.
    kl = F.kl_div(
        torch.log_softmax(dist_logits.float() / tau, dim=-1),
        torch.log_softmax(teacher_logits / tau, dim=-1),
        reduction="batchmean",
        log_target=True,
    )
    return (1 - alpha) * true_loss + alpha * tau**2 * kl


# ----------------------------------------------------------------------------------------------
# The teacher
# ----------------------------------------------------------------------------------------------

class CifarCNN(nn.Module):
    """The course's convolutional teacher for CIFAR-shaped data: images (B, 3, 32, 32)
    → logits (B, K).

    ``len(channels)`` stages of ``convs_per_stage`` × [3×3 convolution (padding 1),
    BatchNorm, ReLU], a 2×2 max-pool after every stage but the last (32 → 16 → 8), then
    the average over the remaining grid and one Linear. Locality and translation
    equivariance are built in: the priors a ViT has to learn from data.
    """

    def __init__(
        self,
        channels: tuple[int, ...] = (32, 64, 128),
        convs_per_stage: int = 1,
        num_classes: int = 10,
    ):
        super().__init__()
        if (
            not channels
            or any(not isinstance(c, int) or c < 1 for c in channels)
            or convs_per_stage < 1
        ):
            raise ValueError(
                "need at least one stage of positive channel counts and "
                f"convs_per_stage ≥ 1, got channels={channels!r}, "
                f"convs_per_stage={convs_per_stage!r}"
            )
        layers, width = [], 3
        for stage, out in enumerate(channels):
            for _ in range(convs_per_stage):
                layers += [
                    nn.Conv2d(width, out, 3, padding=1, bias=False),
                    nn.BatchNorm2d(out),
                    nn.ReLU(inplace=True),
                ]
                width = out
            if stage < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            hint = (
                " — channels-last? use images.permute(0, 3, 1, 2)"
                if images.dim() == 4 and images.shape[-1] == 3
                else ""
            )
            raise ValueError(
                "CifarCNN wants images of shape (B, 3, H, W), got "
                f"{tuple(images.shape)}{hint}"
            )
        # global average pool: (B, C)
        return self.head(self.features(images).mean(dim=(2, 3)))


def teacher_for(profile: Profile | None = None) -> CifarCNN:
    """The profile's teacher: 3 stages of one convolution (quick), or of two, wider (full).

    (On a 2-core CPU the quick one costs about what a 16-32-64 network does: at these sizes the
    time goes to moving 32×32 activations, not to multiplying.)
    """
    profile = profile or get_profile()
    return profile.pick(quick=CifarCNN((32, 64, 128), convs_per_stage=1),
                        full=CifarCNN((64, 128, 256), convs_per_stage=2))


# The quick profile's experiment is data-limited, DeiT's setting in miniature: the ViT trains on
# few images (where its missing locality prior costs the most), in batches of 64 (more updates for
# the same images seen), and the teacher, a CNN trained beforehand on the same images for longer,
# is clearly stronger than that ViT.
# Soft distillation (τ = 2, α = 0.7) passes the teacher's whole distribution, not only its
# decision, which on few images is most of what the teacher knows beyond the labels.
QUICK_TRAIN_IMAGES = 1_000
QUICK_STUDENT_EPOCHS = 20
QUICK_TEACHER_EPOCHS = 40
QUICK_BATCH = 64
QUICK_TEACHER_BATCH = 128


# The quick budget above was chosen by trial runs scored on the stand-in's first
# BUDGET_TRIAL_TEST test images. So that the test images choose nothing they then score, the quick
# profile scores every model of chapter 8 on the test images after those (unchosen_test_images).
BUDGET_TRIAL_TEST = 2_000


def unchosen_test_images(data, n: int = 2_000) -> tuple[np.ndarray, np.ndarray]:
    """``n`` test images and labels that played no part in choosing the quick budget: the ones
    after the first ``BUDGET_TRIAL_TEST``. For the stand-in they are drawn from its generator (its
    quick test split holds only the first ones); for the real data set they are its own.

    >>> from types import SimpleNamespace
    >>> x, y = unchosen_test_images(SimpleNamespace(name="synthetic-cifar", synthetic=True), n=1_000)
    >>> x.shape, y.shape, x.flags.writeable
    ((1000, 32, 32, 3), (1000,), True)
    """
    from vitcourse.data.synthetic import synthetic_split

    start, stop = BUDGET_TRIAL_TEST, BUDGET_TRIAL_TEST + n
    x, y = synthetic_split(data.name, "test", stop) if data.synthetic else (data.x_test, data.y_test)
    if len(y) < stop:
        raise ValueError(f"{data.name} has {len(y):,} test images; {stop:,} are needed to keep "
                         f"{n:,} after the first {start:,}.")
    return x[start:stop].copy(), y[start:stop].copy()  # writable, like data.arrays()


def student_recipe_for(profile: Profile | None = None, **overrides) -> Recipe:
    """The students' recipe (the plain ViT's and the distilled one's, the same for both).

    Full profile: ``vitcourse.cifar.full_vit_recipe`` (chapter 6's run). Quick profile: chapter 6's
    quick recipe on the first ``QUICK_TRAIN_IMAGES`` training images for
    ``QUICK_STUDENT_EPOCHS`` epochs in batches of ``QUICK_BATCH``: a data-limited ViT, where a
    teacher has the most to add.
    """
    profile = profile or get_profile()
    base = profile.pick(
        quick=lambda: quick_vit_recipe(epochs=QUICK_STUDENT_EPOCHS, train_subset=QUICK_TRAIN_IMAGES,
                                       batch_size=QUICK_BATCH),
        full=full_vit_recipe)()
    return replace(base, **overrides)


def teacher_recipe_for(profile: Profile | None = None, **overrides) -> Recipe:
    """The teacher's training recipe: the students' (``student_recipe_for``) with a budget a CNN needs.

    Quick profile: the same images, ``QUICK_TEACHER_EPOCHS`` epochs (longer than the students'),
    so the teacher is trained beforehand and stronger than the student, in batches of
    ``QUICK_TEACHER_BATCH`` (on one CPU thread this CNN's epoch on 2,000 images cost about 1.8 s
    in batches of 128 and 3.2 s in batches of 64). Full profile: 60
    epochs with a 3-epoch warm-up.
    ``recipe.model`` is not trained here (the CNN is); only its ``num_classes`` is read.
    """
    profile = profile or get_profile()
    base = profile.pick(quick=lambda: student_recipe_for(profile, epochs=QUICK_TEACHER_EPOCHS,
                                                         batch_size=QUICK_TEACHER_BATCH),
                        full=lambda: full_vit_recipe(epochs=60, warmup_epochs=3.0))()
    return replace(base, **overrides)


def distillation_runs(profile: Profile | None = None) -> dict[str, dict]:
    """The distillation loss a profile's students learn with: {name: ``DistillationTrainer`` keywords}.

    One entry, used by both distilled students of the ablation (:func:`train_ablation`). Quick
    profile: soft (τ = 2, α = 0.7). Full profile: hard, as DeiT's published models.
    """
    profile = profile or get_profile()
    return profile.pick(
        quick={"soft": {"mode": "soft", "tau": 2.0, "alpha": 0.7}},
        full={"hard": {"mode": "hard"}})


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode (BatchNorm uses its running statistics) and no gradients: a fixed teacher.

    Gradients left over from the teacher's own training are dropped too.
    """
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
        parameter.grad = None
    return model


# ----------------------------------------------------------------------------------------------
# Training: the classification task with another model and another loss
# ----------------------------------------------------------------------------------------------

class DistillationTask(ClassificationTask):
    """Train a student against a frozen ``teacher``: classification with another loss.

    Each step the teacher sees the same augmented batch as the student (under ``no_grad``), and
    :func:`distillation_loss` with ``mode``, ``tau`` and ``alpha`` replaces the plain
    cross-entropy; the CLS head's term uses the recipe's (smoothed, mixed) targets. The student is
    a :class:`DistilledViT` (its distillation head learns the teacher), or any model with one head
    (a plain ViT: the same loss with both terms on its CLS head, the DeiT paper's ablation without
    a distillation token). Evaluation scores the eval-mode output (a DistilledViT's average of both
    heads); :meth:`evaluate_heads` scores each head on its own.
    """

    def __init__(self, teacher: nn.Module, normalize: Callable[[torch.Tensor], torch.Tensor], *,
                 build_model: Callable[[], nn.Module], mode: str = "hard", tau: float = 1.0,
                 alpha: float = 0.5, test_every_epoch: bool = True):
        if mode not in DISTILLATION_MODES:
            raise ValueError(f"mode must be 'hard' or 'soft', got {mode!r}")
        super().__init__(build_model, normalize, test_every_epoch=test_every_epoch)
        self.teacher, self.mode, self.tau, self.alpha = teacher, mode, tau, alpha

    def build(self, trainer: Trainer) -> nn.Module:
        model = super().build(trainer)
        self.teacher = freeze(self.teacher).to(trainer.device)
        return model

    def loss(self, trainer: Trainer, images: torch.Tensor,
             targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """The teacher sees the student's augmented batch; the loss is DeiT's.

        A student with one head (a tensor, not a pair) gets both terms on that head.
        """
        with torch.no_grad():
            teacher_logits = self.teacher(images)
        output = trainer.network(images)
        cls_logits, dist_logits = (output if isinstance(output, tuple)
                                   else (output, output))
        loss = distillation_loss(cls_logits, dist_logits, targets, teacher_logits,
                                 self.mode, self.tau, self.alpha)
        return {"loss": loss}

    def evaluate_heads(self, trainer: Trainer, batch_size: int = 100) -> pd.DataFrame:
        """:func:`evaluate_heads` of ``trainer`` against this task's teacher."""
        return evaluate_heads(trainer, self.teacher, batch_size)


def head_logits(model: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each head's logits (B, K) on normalised images (B, C, H, W), by name.

    A :class:`DistilledViT` has three readings: ``"CLS head"``, ``"distillation head"`` and
    ``"average of both"`` (what ``forward`` gives in eval mode); any other classifier one,
    ``"CLS head"`` (its output).
    """
    if not isinstance(model, DistilledViT):
        return {"CLS head": model(images)}
    cls_logits, dist_logits = model.forward_heads(images)
    return {"CLS head": cls_logits, "distillation head": dist_logits,
            "average of both": (cls_logits + dist_logits) / 2}      # as forward() does


@torch.inference_mode()
def evaluate_heads(trainer: Trainer, teacher: nn.Module, batch_size: int = 100) -> pd.DataFrame:
    """Test accuracy of each head of ``trainer.model`` (rows: :func:`head_logits`, then ``"teacher"``)
    and how often each agrees with the teacher's prediction (columns), on this process's share of
    the test images (all of them when running alone). ``trainer`` is any classification trainer
    (its task gives the test batches); ``teacher`` maps the same normalised images to logits.
    Batches of 100: on one CPU thread the CNN teacher scores 2,000 images in 1.3 s that way and in
    2.3 s in batches of 1,000 (whose 32 × 32 activations no longer fit the caches)."""
    trainer.model.eval()
    teacher.eval()
    right: dict[str, int] = {}
    agree: dict[str, int] = {}
    seen = 0
    for images, labels in trainer.task.test_batches(trainer, batch_size):
        with trainer.autocast():
            heads = head_logits(trainer.model, images)
            heads["teacher"] = teacher(images)
        decided = heads["teacher"].argmax(-1)
        for name, logits in heads.items():
            predicted = logits.argmax(-1)
            right[name] = right.get(name, 0) + int((predicted == labels).sum())
            agree[name] = agree.get(name, 0) + int((predicted == decided).sum())
        seen += len(labels)
    if not seen:
        raise ValueError("evaluate_heads found no test images: give the trainer x_test and y_test")
    return pd.DataFrame({"test accuracy": {k: v / seen for k, v in right.items()},
                         "agrees with teacher": {k: v / seen for k, v in agree.items()}})


class ModelTrainer(CifarTrainer):
    """:class:`~vitcourse.cifar.CifarTrainer` with any model in place of the recipe's ViT (the teacher CNN).

    ``build_model()`` must return a module mapping normalised images (B, 3, 32, 32) to logits
    (B, K); it is called after ``torch.manual_seed(recipe.seed + rank)``, just as the plain
    trainer builds its ViT, so the same seed gives the same initial weights.
    ``test_every_epoch``: as in :class:`~vitcourse.classification.ClassificationTask`.
    """

    def __init__(self, recipe: Recipe, build_model: Callable[[], nn.Module], x_train, y_train, x_test, y_test,
                 dist_info: Dist | None = None, *, test_every_epoch: bool = True):
        task = ClassificationTask(build_model, normalize, test_every_epoch=test_every_epoch)
        super().__init__(recipe, x_train, y_train, x_test, y_test, dist_info, task=task)


class DistillationTrainer(CifarTrainer):
    """The engine with :class:`DistillationTask`: a student of ``recipe.model`` learns from the frozen
    ``teacher`` (``mode``, ``tau``, ``alpha`` as in :func:`distillation_loss`).

    ``token=True``: the student is a :class:`DistilledViT`, its distillation head learns the
    teacher. ``token=False``: a plain :class:`~vitcourse.vit.VisionTransformer`, the same loss with
    both terms on its one CLS head. ``test_every_epoch``: as in :class:`~vitcourse.classification.ClassificationTask`.
    """

    def __init__(self, recipe: Recipe, teacher: nn.Module, x_train, y_train, x_test, y_test, *,
                 mode: str = "hard", tau: float = 1.0, alpha: float = 0.5, token: bool = True,
                 test_every_epoch: bool = True, dist_info: Dist | None = None):
        student = DistilledViT if token else VisionTransformer
        task = DistillationTask(teacher, normalize, build_model=lambda: student(recipe.model), mode=mode,
                                tau=tau, alpha=alpha, test_every_epoch=test_every_epoch)
        super().__init__(recipe, x_train, y_train, x_test, y_test, dist_info, task=task)

    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher, on the trainer's device."""
        return self.task.teacher

    def evaluate_heads(self, batch_size: int = 100) -> pd.DataFrame:
        """:func:`evaluate_heads` of this run against its teacher."""
        return self.task.evaluate_heads(self, batch_size)


# ----------------------------------------------------------------------------------------------
# The ablation: which of the token and the loss does the work
# ----------------------------------------------------------------------------------------------

# The DeiT paper's ablation, on one teacher, seeds and budget: name → what the student is.
ABLATION = {
    "(a) no distillation": "plain ViT, labels only",
    "(b) distilled CLS head": "plain ViT, the distillation loss on its CLS head",
    "(c) CLS + DIST tokens": "DistilledViT, the distillation head learns the teacher",
}

# What (b), the distillation loss with both its terms on a plain ViT's one head, is, by mode.
ONE_HEAD_LOSS = {
    "soft": "classic knowledge distillation, the teacher's softened distribution as a second "
            "target beside the label",
    "hard": "the teacher's decision as a second label beside the true one, DeiT's hard "
            "distillation without the token",
}


def one_head_loss(settings: dict) -> str:
    """What ablation row (b) trains with, in words, for ``settings`` (a
    :func:`distillation_runs` entry): classic knowledge distillation when the loss is soft."""
    mode = settings.get("mode", "hard")
    if mode not in ONE_HEAD_LOSS:
        raise ValueError(f"mode must be 'hard' or 'soft', got {mode!r}")
    return ONE_HEAD_LOSS[mode]


# When a run counts distillation as a help on its budget: the whole of DeiT, (c), is ahead of (a)
# by at least HELPED_MIN_GAIN (a fraction: 0.02 = 2 points), by more than stats.CLEAR_SE paired
# standard errors, and with every seed.
HELPED_MIN_GAIN = 0.02


def distillation_helped(gain: float, gain_se: float, seed_gains) -> bool:
    """Whether (c) − (a) = ``gain`` ± ``gain_se`` (paired, over the seeds' mean; fractions) and the
    per-seed gains ``seed_gains`` meet the bar :func:`helped_bar` states."""
    seed_gains = list(seed_gains)
    if not seed_gains:
        raise ValueError("seed_gains needs the gain of at least one seed")
    return gain >= HELPED_MIN_GAIN and is_clear(gain, gain_se) and min(seed_gains) > 0


def helped_bar() -> str:
    """:func:`distillation_helped`'s bar in words, from its constants."""
    return (f"at least {100 * HELPED_MIN_GAIN:g} points, more than {standard_errors()} "
            "above zero, and a gain with each seed")


def train_ablation(recipe: Recipe, teacher: nn.Module, arrays, seeds, settings: dict, *,
                   report: Callable[[str], None] | None = print) -> dict[tuple[int, str], CifarTrainer]:
    """Train the three :data:`ABLATION` students with each seed: ``(seed, variant) → trainer``.

    Every student has ``recipe`` with ``seed`` replaced, the same images (``arrays``: x_train,
    y_train, x_test, y_test), and is tested once, after its last epoch. (b) and (c) learn from the
    frozen ``teacher`` with ``settings`` (``mode``, ``tau``, ``alpha``); they differ only in the
    distillation token and its head. ``report`` gets one line per finished run (None: silent).
    """
    trainers = {}
    for seed in seeds:
        seeded = replace(recipe, seed=seed)
        for variant in ABLATION:
            if variant.startswith("(a)"):
                trainer = ModelTrainer(seeded, lambda: VisionTransformer(seeded.model), *arrays,
                                       test_every_epoch=False)
            else:
                trainer = DistillationTrainer(seeded, teacher, *arrays, token=variant.startswith("(c)"),
                                              test_every_epoch=False, **settings)
            trainer.fit(progress=False)
            trainers[seed, variant] = trainer
            if report:
                accuracy = fmt(trainer.history()["test_acc"].iloc[-1], "acc")
                report(f"{variant}, seed {seed}: test accuracy {accuracy}")
    return trainers


# The teacher's row of :func:`ablation_table`: it is no student, so it has no head to name.
TEACHER_ROW = ("teacher", "—")


def ablation_table(trainers: dict[tuple[int, str], CifarTrainer], teacher: nn.Module) -> pd.DataFrame:
    """Test accuracy and agreement with the teacher of every head of every variant, averaged over
    the seeds: rows ``(variant, head)`` (the teacher's, :data:`TEACHER_ROW`, last), columns as
    :func:`evaluate_heads`."""
    if not trainers:
        raise ValueError("ablation_table needs trained runs: pass train_ablation(...)'s result")
    per_run = []
    for (_, variant), trainer in trainers.items():
        heads = evaluate_heads(trainer, teacher)
        per_run.append(pd.concat({variant: heads.drop(index="teacher")}, names=["variant", "head"]))
    teacher_row = heads.loc[["teacher"]].set_axis(
        pd.MultiIndex.from_tuples([TEACHER_ROW], names=["variant", "head"]))
    return pd.concat([*per_run, teacher_row]).groupby(level=["variant", "head"], sort=False).mean()


# The DeiT paper's cosine similarity of the CLS and distillation rows at the last layer (ImageNet).
PAPER_OUTPUT_COS = 0.93


def ablation_figure(results: pd.DataFrame, similarity: pd.DataFrame, n_test: int, *,
                    paper_output: float = PAPER_OUTPUT_COS, title: str = ""):
    """The ablation in one figure: each head's test accuracy and agreement with the teacher (left), and
    cos(CLS row, DIST row) layer by layer (right).

    results: :func:`ablation_table`'s frame (rows ``(variant, head)``, the teacher's last), measured
    on ``n_test`` test images: each bar carries ± one binomial standard error
    (:func:`vitcourse.stats.binomial_se`), and the axis starts at 0.
    similarity: one column per model, rows as :func:`token_similarity` (``"input"`` … ``"output"``).
    ``paper_output`` is marked at the output as the DeiT paper's value (its last layer, ImageNet).
    """
    import matplotlib.pyplot as plt

    from vitcourse.plotting import percent_formatter

    fig, (left, right) = plt.subplots(1, 2, figsize=(8.0, 4.0), gridspec_kw={"width_ratios": [1.15, 1]})
    heads = results.drop(index="teacher", level="variant")
    short = {"CLS head": "CLS", "distillation head": "DIST", "average of both": "avg"}
    names = [f"{variant[:3]}\n{short.get(head, head)}" for variant, head in heads.index]
    x = torch.arange(len(heads)).numpy()
    for offset, column in ((-0.2, "test accuracy"), (0.2, "agrees with teacher")):
        errors = [binomial_se(float(p), n_test) for p in heads[column]]
        left.bar(x + offset, heads[column], width=0.4, yerr=errors, capsize=3, label=column,
                 error_kw={"lw": 1, "ecolor": "black"})
    teacher_acc = results.xs("teacher", level="variant")["test accuracy"].iloc[0]
    left.axhline(teacher_acc, color="grey", ls="--", lw=1.2, label="teacher's accuracy")
    left.set(ylim=(0.0, 1.0), xticks=x, ylabel="share of test images",
             title="each head: accuracy, agreement")
    left.set_xticklabels(names)
    left.yaxis.set_major_formatter(percent_formatter())  # in % like the page's tables
    handles, labels = left.get_legend_handles_labels()      # the bars first, then the teacher's line
    order = [labels.index(name) for name in ("test accuracy", "agrees with teacher", "teacher's accuracy")]
    left.legend([handles[i] for i in order], [labels[i] for i in order], loc="upper center",
                bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    layers = [name.removeprefix("block ") for name in similarity.index]      # "input", "1", …, "output"
    for column, style in zip(similarity.columns, ("s-", "o--", "^:")):
        right.plot(range(len(similarity)), similarity[column], style, label=column)
    right.plot([len(similarity) - 1], [paper_output], "k*", ms=13, zorder=5,
               label=f"DeiT paper (ImageNet), output: {paper_output}")
    right.set(ylim=(-0.1, 1.05), ylabel="cos(CLS row, DIST row)", xticks=range(len(similarity)),
              xlabel="layer (block number)", title="how alike the two rows of (c) are")
    right.set_xticklabels(layers)
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=1, frameon=False)
    if title:
        fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------------------------
# What the two tokens become
# ----------------------------------------------------------------------------------------------

@torch.no_grad()
def token_similarity(model: DistilledViT, images: torch.Tensor) -> pd.Series:
    """Cosine similarity of the CLS and distillation rows, layer by layer, averaged over ``images``.

    images (B, C, H, W) → a Series indexed ``"input"`` (after the positions are added),
    ``"block 1"`` … ``"block L"``, ``"output"`` (after the final LayerNorm). Computed in eval mode.
    """
    if not isinstance(model, DistilledViT):
        raise ValueError(f"token_similarity needs a DistilledViT (it has a distillation token), "
                         f"got {type(model).__name__}")
    was_training = model.training
    model.eval()
    try:
        x = model.embed(images)
        rows = {"input": F.cosine_similarity(x[:, 0], x[:, 1], dim=-1).mean()}
        for depth, block in enumerate(model.blocks, start=1):
            x, _ = block(x)
            rows[f"block {depth}"] = F.cosine_similarity(x[:, 0], x[:, 1], dim=-1).mean()
        x = model.norm(x)
        rows["output"] = F.cosine_similarity(x[:, 0], x[:, 1], dim=-1).mean()
    finally:
        model.train(was_training)
    return pd.Series({k: float(v) for k, v in rows.items()}, name="cos(CLS, DIST)")


def learned_token_similarity(model: DistilledViT) -> float:
    """Cosine similarity of the two learned vectors themselves (CLS and distillation
    token)."""
    return float(F.cosine_similarity(model.cls_token.detach().flatten(),
    model.dist_token.detach().flatten(), dim=0))


def locality_ratio(weights: torch.Tensor, grid: int, special_tokens: int = 1) -> float:
    """How much more attention a patch pays to its grid neighbours than to patches
    farther away.

    weights (B, heads, T, T): one block's attention, T = special_tokens + grid², the
    patches in raster order after the special tokens. Returns the mean weight from a
    patch to a patch at grid distance 1 (its 8 neighbours) divided by the mean weight
    to patches at distance ≥ 2; 1.0 means no preference for neighbours at all. Needs
    grid ≥ 3 (else nothing is that far).
    """
    if grid < 3:
        raise ValueError(
            f"grid must be at least 3 (on a {grid}×{grid} grid no patch is 2 steps "
            "from another)"
        )
    if (
        weights.dim() != 4
        or weights.shape[-1] != weights.shape[-2]
        or weights.shape[-1] != special_tokens + grid * grid
    ):
        raise ValueError(
            "weights must be (B, heads, T, T) with T = special_tokens + grid² = "
            f"{special_tokens + grid * grid}, got {tuple(weights.shape)}"
        )
    # (N, N)
    patches = (weights[..., special_tokens:, special_tokens:].float().mean(dim=(0, 1)))
    index = torch.arange(grid * grid, device=weights.device)
    rows, cols = index // grid, index % grid  # raster order
    # Chebyshev, (N, N)
    distance = torch.maximum((rows[:, None] - rows).abs(), (cols[:, None] - cols).abs())
    return float(patches[distance == 1].mean() / patches[distance >= 2].mean())


# The reference numbers: ImageNet top-1 (%) and parameters (M) of the official model zoo
# (facebookresearch/deit, README_deit.md); distilled = hard distillation from a RegNetY-16GF.
REFERENCE = pd.DataFrame(
    {"params (M)": [5, 22, 86], "top-1 (%)": [72.2, 79.9, 81.8],
     "distilled params (M)": [6, 22, 87], "distilled top-1 (%)": [74.5, 81.2, 83.4]},
    index=pd.Index(["Ti", "S", "B"], name="DeiT"))  # short labels: a table's narrow first column


def reference_table() -> pd.DataFrame:
    """The zoo's numbers with the gain from distillation (percentage points) computed."""
    table = REFERENCE.copy()
    table["gain (points)"] = (table["distilled top-1 (%)"] - table["top-1 (%)"]).round(1)
    return table


def size_table() -> pd.DataFrame:
    """DeiT-Ti/S/B parameters from the library's configs (plain and distilled) against the zoo's:
    rows ``"Ti"``, ``"S"``, ``"B"`` (index ``"DeiT"``), as :data:`REFERENCE`."""
    rows = {}
    for name in ("Ti", "S", "B"):
        config = deit_config(name)
        rows[name] = {"dim": config.dim, "heads": config.heads, "depth": config.depth,
                      "params": param_count(config), "distilled params": distilled_param_count(config)}
    table = pd.DataFrame(rows).T.astype(int)
    table["zoo (M)"] = REFERENCE["params (M)"].to_numpy()
    table["zoo distilled (M)"] = REFERENCE["distilled params (M)"].to_numpy()
    return table.rename_axis(REFERENCE.index.name)


__all__ = ["ABLATION", "DISTILLATION_MODES", "HELPED_MIN_GAIN", "ONE_HEAD_LOSS", "PAPER_OUTPUT_COS",
           "REFERENCE", "TEACHER_ROW", "CifarCNN", "DistillationTask", "DistillationTrainer", "DistilledViT",
           "ModelTrainer", "ablation_figure", "ablation_table", "deit_config", "distillation_helped",
           "distillation_loss", "distillation_runs", "distilled_param_count", "evaluate_heads", "freeze",
           "head_logits", "helped_bar", "learned_token_similarity", "locality_ratio", "one_head_loss",
           "reference_table", "size_table", "student_recipe_for", "teacher_for", "teacher_recipe_for",
           "token_similarity", "train_ablation"]
