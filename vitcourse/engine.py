"""The one training engine: a :class:`Trainer` drives a :class:`Task`, which owns only what differs.

The trainer does what every run of chapters 6–9 needs, once:

* the training images sit on the device as uint8 (N, 3, H, W) (:func:`images_to_device`); a
  batch is an index slice of the epoch's order, a shuffle seeded by (seed, epoch), of which each
  of ``world`` processes takes every ``world``-th index (:func:`shard`, as ``DistributedSampler``);
* AdamW that decays only weight matrices (:func:`make_adamw`), its learning rate set every step
  by linear warm-up and a cosine (:func:`warmup_cosine`); gradient clipping;
* bf16 autocast where it pays (:func:`vitcourse.device.autocast_dtype`), ``torch.compile`` where
  it works — and eager, with a warning, where the compiler fails;
* the history (one row per epoch), progress (one bar, or one line per epoch, per run), and
  checkpoints written atomically (:func:`save_checkpoint`) that resume bit for bit: weights,
  optimiser, step, history, the epoch's running sums and every random generator;
* several processes through ``torchrun`` and ``DistributedDataParallel`` (:func:`init_distributed`).

A task says what is trained and on what loss. Each step the trainer calls its hooks in this order::

    prepare(batch)      → the inputs (augmentation, views), outside the compiled region
    before_step()         after the learning rate is set (DINO: weight decay, temperature)
    loss(inputs)        → {"loss": …, other 0-d values}, under autocast; backward, clipping follow
    before_update()       gradients ready (DINO: keep the last layer still at first)
    after_step(values)    after the optimiser's step (DINO: the teacher's EMA, the centre)

and after each epoch ``epoch_row(sums, steps)``. The three tasks: classification
(:class:`vitcourse.classification.ClassificationTask`: the ViT, Swin, the DeiT teacher),
distillation (:class:`vitcourse.deit.DistillationTask`) and DINO (:class:`vitcourse.dino.DINOTask`).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn

from vitcourse.device import autocast_dtype, get_device, indexed_device
from vitcourse.progress import progress_bar
from vitcourse.report import fmt

# Recipe fields a resumed run may change: they change how the steps run, not what is trained.
RESUMABLE_CHANGES = ("compile", "bf16")


class EngineRecipe(Protocol):
    """The fields of a recipe the trainer reads (``vitcourse.cifar.Recipe`` and ``vitcourse.dino.DINORecipe``
    have them); a recipe may also have ``test_subset``. ``compile`` and ``bf16``: None means "on CUDA only"."""

    epochs: int
    batch_size: int              # the global batch: with N processes each takes batch_size / N
    lr: float
    weight_decay: float
    warmup_epochs: float
    min_lr_ratio: float
    grad_clip: float | None
    train_subset: int | None
    compile: bool | None
    bf16: bool | None
    seed: int


# ----------------------------------------------------------------------------------------------
# Optimiser and schedule
# ----------------------------------------------------------------------------------------------

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

def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` with ``torch.save`` atomically: a crash mid-write leaves the old
    file intact.

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
# Several processes (torchrun sets RANK, WORLD_SIZE and LOCAL_RANK)
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


def add_run_arguments(parser) -> None:
    """The command-line options every training CLI shares (``python -m vitcourse.cifar``, ``…dino``):
    the device, a step limit, checkpoint and resume, a JSON summary, and quiet runs."""
    parser.add_argument("--device", help="cpu or cuda (default: the best available)")
    parser.add_argument("--max-steps", type=int, help="stop after this many steps (smoke tests)")
    parser.add_argument("--checkpoint", type=Path, help="save here after every epoch")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    parser.add_argument("--summary", type=Path, help="write the final metrics here as JSON")
    parser.add_argument("--no-progress", action="store_true")


def resume_if_asked(trainer, args) -> int:
    """Load ``args.checkpoint`` into ``trainer`` when ``--resume`` asks and the file exists (the
    options of :func:`add_run_arguments`); return the step the run goes on from (0: a fresh run)."""
    if args.resume and args.checkpoint and args.checkpoint.exists():
        trainer.load(args.checkpoint)
    return trainer.step


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


def mean_over_processes(value: torch.Tensor, info: Dist) -> torch.Tensor:
    """The mean of ``value`` over the job's processes, in place (``value`` itself when running alone)."""
    if info.distributed:
        dist.all_reduce(value)
        value /= info.world
    return value


@torch.no_grad()
def param_checksum(model: nn.Module) -> float:
    """The sum of every parameter, in float64: equal for equal weights."""
    return float(sum(p.double().sum() for p in model.parameters()))


def check_replicas_agree(model: nn.Module, info: Dist) -> None:
    """DDP keeps every process's copy identical; verify it once at the end (cheap, and loud if not)."""
    if not info.distributed:
        return
    checksum = torch.tensor([param_checksum(model)], dtype=torch.float64, device=info.device)
    low, high = checksum.clone(), checksum.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise RuntimeError(f"model replicas diverged across processes: parameter sums {float(low)} … {float(high)}")


# ----------------------------------------------------------------------------------------------
# Data on the device
# ----------------------------------------------------------------------------------------------

def images_to_device(images, device: torch.device | str) -> torch.Tensor:
    """uint8 (N, H, W, 3) channels-last, as the loaders return them → uint8 (N, 3, H, W) on ``device``."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 colour images (N, H, W, 3), got {images.dtype} {images.shape}")
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).contiguous()


def labels_to_device(labels, device: torch.device) -> torch.Tensor:
    """Class indices (N,) → int64 on ``device``."""
    return torch.as_tensor(np.asarray(labels), dtype=torch.int64, device=device)


# ----------------------------------------------------------------------------------------------
# The task: what differs between runs
# ----------------------------------------------------------------------------------------------

class Task:
    """What one kind of training owns: its modules, its loss, and hooks around a step.

    The :class:`Trainer` calls :meth:`build` once (right after seeding torch's generator with
    ``recipe.seed + rank``), then per step :meth:`prepare`, :meth:`before_step`, :meth:`loss`,
    :meth:`before_update`, :meth:`after_step`, and after every epoch :meth:`epoch_row`. The
    defaults do nothing; a task overrides what it needs.

    Class attributes: ``columns``, the history's columns in order (``"lr"`` is the trainer's);
    ``progress_label`` and ``progress_metric``, the progress line's name and the column it shows;
    ``compiled_too``, names of task attributes holding modules the loss also runs (a frozen
    teacher), compiled alongside the trained network and found in ``trainer.companions``.
    """

    columns: tuple[str, ...] = ("train_loss", "lr")
    progress_label: str = "training"
    progress_metric: str = "train_loss"
    compiled_too: tuple[str, ...] = ()

    def build(self, trainer: Trainer) -> nn.Module:
        """Build the task's modules on ``trainer.device``; return the one the optimiser trains."""
        raise NotImplementedError(f"{type(self).__name__} must say what it trains: define build()")

    def prepare(self, trainer: Trainer, *batch: torch.Tensor) -> tuple:
        """The batch (uint8 images, and labels where there are any) → the inputs of :meth:`loss`."""
        return batch

    def before_step(self, trainer: Trainer) -> None:
        """Before the forward pass; the step's learning rate is already set."""

    def loss(self, trainer: Trainer, *inputs) -> dict[str, torch.Tensor]:
        """The step's loss under ``{"loss": …}`` (backpropagated) and any other 0-d values to record.

        Runs under autocast; run the trained network as ``trainer.network``. If a compiled
        network fails, the trainer switches to eager and calls this again with the same inputs,
        so it must not change the task's state (leave that to :meth:`after_step`).
        """
        raise NotImplementedError(f"{type(self).__name__} must define loss()")

    def before_update(self, trainer: Trainer) -> None:
        """After backward and clipping, before the optimiser's step: the gradients may be edited."""

    def after_step(self, trainer: Trainer, values: dict[str, torch.Tensor]) -> None:
        """After the optimiser's step (``trainer.step`` is still the step just taken)."""

    def epoch_row(self, trainer: Trainer, sums: dict[str, torch.Tensor], steps: int) -> dict:
        """This epoch's history entries (all ``columns`` but ``lr``), from the sums of :meth:`loss`'s values."""
        return {"train_loss": float(sums["loss"] / steps)}

    def evaluate(self, trainer: Trainer, **options):
        raise NotImplementedError(f"{type(self).__name__} has no test evaluation")

    def state_dict(self) -> dict:
        """What a checkpoint must keep of the task beyond the trained model (generators, a teacher)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s result."""


# ----------------------------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------------------------

class Trainer:
    """Trains ``task``'s model with ``recipe`` on uint8 images kept on the device.

    Args:
        task: what is trained and on what loss (:class:`Task`).
        recipe: the hyper-parameters (:class:`EngineRecipe`'s fields; ``train_subset`` and
            ``test_subset`` keep the first images only).
        x_train, y_train, x_test, y_test: uint8 (N, H, W, 3) images and int (N,) labels, as
            ``vitcourse.data`` returns them; labels and test images only where the task uses them.
        dist_info: this process's rank / world / device (:func:`init_distributed`); default: the
            best local device, alone.

    ``fit()`` trains to the end (or to ``until_step``); ``history()`` is the per-epoch table;
    ``evaluate()`` is the task's evaluation; ``save`` / ``load`` checkpoint everything a
    resumed run needs.
    """

    def __init__(self, task: Task, recipe: EngineRecipe, x_train, y_train=None, x_test=None, y_test=None, *,
                 dist_info: Dist | None = None):
        self.task, self.recipe = task, recipe
        self.dist = dist_info or Dist(device=get_device())
        self.device = indexed_device(self.dist.device)
        self._place_data(x_train, y_train, x_test, y_test)
        self._plan_steps()
        torch.manual_seed(recipe.seed + self.dist.rank)     # initial weights (DDP copies rank 0's) and dropout
        self.model = task.build(self).to(self.device)
        self.optimizer = make_adamw(self.model, recipe.lr, recipe.weight_decay, self.device)
        self.amp_dtype = autocast_dtype(self.device, recipe.bf16)
        self.step, self.rows = 0, []
        self._start_epoch()
        self.use_compile = self.device.type == "cuda" if recipe.compile is None else recipe.compile
        self.network = self._maybe_compile(self._parallel(self.model))
        self.companions = {name: self._maybe_compile(getattr(task, name)) for name in task.compiled_too}

    def _place_data(self, x_train, y_train, x_test, y_test) -> None:
        keep, keep_test = self.recipe.train_subset, getattr(self.recipe, "test_subset", None)
        self.x_train = images_to_device(np.asarray(x_train)[:keep], self.device)
        self.y_train = None if y_train is None else labels_to_device(np.asarray(y_train)[:keep], self.device)
        self.x_test = None if x_test is None else images_to_device(np.asarray(x_test)[:keep_test], self.device)
        self.y_test = None if y_test is None else labels_to_device(np.asarray(y_test)[:keep_test], self.device)

    def _plan_steps(self) -> None:
        r, world = self.recipe, self.dist.world
        if r.batch_size % world:
            raise ValueError(f"batch_size={r.batch_size} must divide evenly over {world} processes")
        self.local_batch = r.batch_size // world
        self.steps_per_epoch = math.ceil(len(self.x_train) / world) // self.local_batch
        if self.steps_per_epoch == 0:
            raise ValueError(f"batch_size={r.batch_size} is larger than the {len(self.x_train)} training images; "
                             f"use a smaller batch or more images")
        self.total_steps = self.steps_per_epoch * r.epochs
        self.warmup_steps = round(r.warmup_epochs * self.steps_per_epoch)

    def _parallel(self, model: nn.Module) -> nn.Module:
        if not self.dist.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel
        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def _maybe_compile(self, module: nn.Module) -> nn.Module:
        return torch.compile(module) if self.use_compile else module

    def autocast(self):
        """bf16 autocast where the recipe and device want it, else nothing."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype else nullcontext()

    # -- one step ------------------------------------------------------------------------------

    def train_step(self, *batch: torch.Tensor):
        """One optimiser step on a batch on the device: uint8 images (B, 3, H, W) (and labels (B,)).

        Returns the loss (0-d), or ``(loss, …)`` with the task's other per-step values (DINO:
        the teacher's entropy), detached.
        """
        values = self._step(batch)
        return values["loss"] if len(values) == 1 else tuple(values.values())

    def _step(self, batch) -> dict[str, torch.Tensor]:
        self.model.train()
        inputs = self.task.prepare(self, *batch)
        r = self.recipe
        factor = warmup_cosine(self.step, total_steps=self.total_steps,
                               warmup_steps=self.warmup_steps, min_ratio=r.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = r.lr * factor
        self.task.before_step(self)
        self.optimizer.zero_grad(set_to_none=True)
        values = self._forward_backward(inputs)
        if r.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), r.grad_clip)
        self.task.before_update(self)
        self.optimizer.step()
        values = {name: value.detach() for name, value in values.items()}
        self.task.after_step(self, values)
        self.step += 1
        return values

    def _forward_backward(self, inputs) -> dict[str, torch.Tensor]:
        try:
            with self.autocast():
                values = self.task.loss(self, *inputs)
            values["loss"].backward()
            return values
        except Exception as error:   # noqa: BLE001 — only a compiler failure is caught; eager re-raises real bugs
            if not self.use_compile:
                raise
            warnings.warn(f"torch.compile failed here ({type(error).__name__}: {str(error)[:200]}); "
                          f"training eagerly instead", stacklevel=4)
            self.use_compile = False
            self.network = self.network._orig_mod
            self.companions = {name: module._orig_mod for name, module in self.companions.items()}
            self.optimizer.zero_grad(set_to_none=True)
            return self._forward_backward(inputs)

    # -- epochs --------------------------------------------------------------------------------

    def epoch_batches(self, epoch: int) -> list[torch.Tensor]:
        """This rank's index batches of ``epoch``: a shuffle seeded by (seed, epoch), sharded, last partial dropped."""
        seed = self.recipe.seed * 100_003 + epoch
        order = torch.randperm(len(self.x_train), generator=torch.Generator().manual_seed(seed))
        mine = shard(order, self.dist.rank, self.dist.world).to(self.device)
        return list(mine[: self.steps_per_epoch * self.local_batch].split(self.local_batch))

    def _batch(self, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.y_train is None:
            return (self.x_train[index],)
        return self.x_train[index], self.y_train[index]

    def _start_epoch(self) -> None:
        """Empty the running sums of the epoch (kept on the device: .item() per step would stall a GPU)."""
        self.epoch_sums: dict[str, torch.Tensor] = {}
        self.epoch_steps, self.epoch_seconds = 0, 0.0

    def _add_to_epoch(self, values: dict[str, torch.Tensor]) -> None:
        for name, value in values.items():
            self.epoch_sums[name] = self.epoch_sums.get(name, torch.zeros((), device=self.device)) + value
        self.epoch_steps += 1

    def fit(self, until_step: int | None = None, progress: bool = True,
            checkpoint: str | os.PathLike | None = None) -> pd.DataFrame:
        """Train from the current step to ``until_step`` (default: the end); returns :meth:`history`.

        After every full epoch the task adds a row to the history (classification evaluates on
        the test images first) and, if ``checkpoint`` is given, a checkpoint is saved there; a run
        stopped mid-epoch by ``until_step`` saves one at its last step too, so it resumes there.
        """
        end = self.total_steps if until_step is None else min(until_step, self.total_steps)
        bar = progress_bar(end, self.task.progress_label, initial=self.step, enabled=progress and self.dist.main)
        while self.step < end:
            epoch, offset = divmod(self.step, self.steps_per_epoch)
            start = time.perf_counter()
            for index in self.epoch_batches(epoch)[offset:]:
                self._add_to_epoch(self._step(self._batch(index)))
                bar.update()
                if self.step >= end:
                    break
            self.epoch_seconds += time.perf_counter() - start
            if self.step % self.steps_per_epoch == 0:        # a whole epoch: record it
                self._end_epoch(epoch, checkpoint)
                metric = self.task.progress_metric
                value = self.rows[-1][metric]  # an accuracy in % as the book shows it, else 3 places
                bar.set_postfix(**{metric: fmt(value, "acc") if metric.endswith("_acc") else f"{value:.3f}"})
        bar.close()
        if checkpoint is not None and self.step % self.steps_per_epoch:
            self.save(checkpoint)                                # stopped mid-epoch
        return self.history()

    def _end_epoch(self, epoch: int, checkpoint) -> None:
        sums = {name: mean_over_processes(total, self.dist) for name, total in self.epoch_sums.items()}
        row = self.task.epoch_row(self, sums, self.epoch_steps)
        seconds = self.epoch_seconds
        self.rows.append({"epoch": epoch + 1, **row, "lr": self.optimizer.param_groups[0]["lr"],
                          "seconds": seconds, "images_per_s": self.epoch_steps * self.recipe.batch_size / seconds})
        self._start_epoch()
        if checkpoint is not None:
            self.save(checkpoint)

    def history(self) -> pd.DataFrame:
        """One row per finished epoch: the task's columns, the learning rate, time, images/s."""
        columns = ["epoch", *self.task.columns, "seconds", "images_per_s"]
        return pd.DataFrame(self.rows, columns=columns).set_index("epoch")

    def evaluate(self, **options):
        """The task's evaluation (classification: loss, accuracy and confusion matrix on the test images)."""
        return self.task.evaluate(self, **options)

    # -- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything a resumed run needs; tensors only where a checkpoint loads with ``weights_only``."""
        state = {"recipe": asdict(self.recipe), "step": self.step, "rows": self.rows,
                 "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "epoch": {"sums": {k: v.cpu() for k, v in self.epoch_sums.items()},
                           "steps": self.epoch_steps, "seconds": self.epoch_seconds},
                 "task": self.task.state_dict(), "torch_rng": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict) -> None:
        self._check_recipe(state["recipe"])
        if "task" not in state:
            raise ValueError("this checkpoint was written before the training engine (it has no task state); "
                             "start a new run")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.task.load_state_dict(state["task"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.step, self.rows = state["step"], list(state["rows"])
        self.epoch_sums = {k: v.to(self.device) for k, v in state["epoch"]["sums"].items()}
        self.epoch_steps, self.epoch_seconds = state["epoch"]["steps"], state["epoch"]["seconds"]

    def _check_recipe(self, saved: dict) -> None:
        """The recipe must match, except how it runs: compiled or not, bf16 or not."""
        ours = asdict(self.recipe)
        differ = sorted(k for k in ours if k not in RESUMABLE_CHANGES and _plain(saved.get(k)) != _plain(ours[k]))
        if differ:
            raise ValueError("the checkpoint was trained with a different recipe: "
                             + "; ".join(f"{k}: checkpoint {saved.get(k)!r}, now {ours[k]!r}" for k in differ)
                             + ". Resume with the checkpoint's recipe, or start a new run")

    def save(self, path: str | os.PathLike) -> None:
        """Checkpoint (rank 0 writes; every rank waits for it)."""
        if self.dist.main:
            save_checkpoint(path, self.state_dict())
        if self.dist.distributed:
            dist.barrier()

    def load(self, path: str | os.PathLike) -> None:
        self.load_state_dict(load_checkpoint(path))


def _plain(value):
    """Tuples and lists compare alike (a checkpoint may store a recipe's tuple as a list)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
