"""The small training loop of chapter 5 and assignment 2: ``fit``, ``evaluate``, ``predict`` on float tensors.

A deliberately short loop the chapter can show whole: Adam and cross-entropy on integer labels,
nothing else. Chapters 6–9 train through the engine instead (:class:`vitcourse.engine.Trainer`:
augmentation, AdamW with a schedule, checkpoints, DDP, DINO). Built for small models on a
laptop CPU as much as for a GPU:

* the whole data set sits in one tensor on the device, and a batch is an index slice of a
  per-epoch random permutation: no DataLoader, no worker processes, no per-batch copies;
* Adam updates all parameters as one flat tensor (:class:`FlatAdam`), its update written out
  as a handful of tensor operations on that one tensor;
* mixed precision (``mixed_precision=True``; the default on CUDA): the model computes with a
  bf16 working copy of its weights under bf16 autocast, while Adam keeps float32 master weights
  (:class:`FlatAdam`'s ``working_dtype``) — the matrix products and activations in bf16, the
  softmax and the loss in float32 (LayerNorm's statistics are float32 inside its kernel);
  evaluation always uses the float32 master weights. On a CPU with bf16 units
  (:func:`vitcourse.device.has_fast_bf16`) it can make the course's own models faster
  (``bench/first_vit_step_speed.py`` measures it), but it is opt-in there: ``nn.MultiheadAttention`` goes through PyTorch's fused attention
  kernel, which has no fast bf16 path on CPUs and trains about 2× *slower* under autocast;
* ``cpu_threads`` can pin the CPU's thread count for the loop, for machines whose cores are
  shared with other work (see :func:`vitcourse.device.cpu_threads`);
* on the CPU, glibc's malloc is asked to keep freed memory for the next step
  (:func:`vitcourse.device.keep_freed_memory`) instead of returning it to the OS and taking
  a page fault per 4 KiB to get it back;
* evaluation runs under ``torch.inference_mode``, in eval mode (no dropout), and puts the
  model back in the mode it was in; its batches are large on a GPU and 256 on a CPU, where
  batches of 1,000 made every activation a fresh multi-megabyte allocation that the OS maps in
  page by page (about 200,000 page faults and 1.7× the time for 10,000 images here).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import pandas as pd
import torch
import torch.nn.functional as F


from vitcourse.progress import progress_bar
from vitcourse.report import fmt
from vitcourse.device import autocast_dtype, get_device, keep_freed_memory
from vitcourse.device import cpu_threads as _cpu_threads


@dataclass
class History:
    """Per-epoch metrics of one :func:`fit` call; ``to_frame()`` gives a pandas table."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        columns = {"train_loss": self.train_loss, "train_acc": self.train_acc,
                   "val_loss": self.val_loss, "val_acc": self.val_acc, "seconds": self.seconds}
        frame = pd.DataFrame({k: v for k, v in columns.items() if v})
        frame.index = pd.RangeIndex(1, len(frame) + 1, name="epoch")
        return frame


def _as_tensors(x, y, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(x)
    y = torch.as_tensor(y)
    if not torch.is_floating_point(x):
        raise TypeError(f"inputs must be floating point (scale images to [0, 1] first), got {x.dtype}")
    if y.dtype != torch.int64:
        y = y.long()
    if len(x) != len(y):
        raise ValueError(f"{len(x)} inputs but {len(y)} labels: they must pair up one to one")
    return x.to(device), y.to(device)


class FlatAdam:
    """Adam over every trainable parameter of a model, kept in one flat buffer.

    Each parameter (and its gradient) becomes a view into one flat tensor, as apex's FusedAdam
    and FSDP's flat parameters do: each step then updates one tensor instead of one per layer,
    and zeroing the gradients is a single fill. The first ViT has 19 parameter tensors and only
    42,506 numbers, so per-tensor work was a tenth of a CPU training step.

    The update is written out (:meth:`step`) with the same operations ``torch.optim.Adam``
    performs per tensor (``foreach=False``), so the numbers match it bit for bit — without the
    Python bookkeeping of ``torch.optim.Optimizer.step``, which cost a fused Adam step on this
    small model several times what the arithmetic did.

    ``working_dtype=torch.bfloat16`` is mixed precision's classic recipe (Micikevicius et al.,
    2018): the model computes with a bf16 *working copy* of the weights and writes bf16
    gradients, while the float32 *master* weights and Adam's state live here; each step
    upcasts the gradients once, updates the master and refreshes the copy, one tensor
    operation each. Autocast alone would cast every layer's weights on every forward pass and
    every gradient on the way back. :meth:`master_weights` points the model at the float32
    master for a while (to evaluate it); :meth:`finish` does so for good. A model with
    floating-point buffers (BatchNorm's running statistics, say) keeps computing with the master
    weights: its buffers must match its parameters' dtype, and autocast alone handles it.

    Autograd adds each new gradient into the existing ``.grad`` view in place; code that
    *replaces* a ``.grad`` breaks the link, and ``check_gradients()`` says so.
    """

    def __init__(self, model: torch.nn.Module, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, working_dtype: torch.dtype | None = None):
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError(f"{type(model).__name__} has no trainable parameters to optimise")
        with torch.no_grad():
            flat = torch.cat([p.reshape(-1) for p in self.params])
        self.flat = torch.nn.Parameter(flat)                  # the (master) weights Adam updates
        self.flat.grad = torch.zeros_like(flat)
        self.working = None                                  # a low-precision copy the model computes with
        has_float_buffers = any(b.is_floating_point() for b in model.buffers())
        if working_dtype not in (None, flat.dtype) and not has_float_buffers:
            self.working = flat.detach().to(working_dtype)
            self.working.grad = torch.zeros_like(self.working)
        self._point_params_at(self._in_use)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avg = torch.zeros_like(flat)       # m: running mean of the gradients
        self.exp_avg_sq = torch.zeros_like(flat)    # v: running mean of their squares
        self.steps = 0

    @property
    def _in_use(self) -> torch.Tensor:
        """The flat buffer the model's parameters and gradients are views of right now."""
        return self.working if self.working is not None else self.flat

    def _point_params_at(self, buffer: torch.Tensor) -> None:
        """Make every parameter and its gradient views into ``buffer`` and ``buffer.grad``."""
        offset = 0
        for p in self.params:
            n = p.numel()
            p.data = buffer.data[offset:offset + n].view(p.shape)
            p.grad = buffer.grad[offset:offset + n].view(p.shape)
            offset += n

    @staticmethod
    def supports(model: torch.nn.Module) -> bool:
        """One dtype and one device for every trainable parameter (else use torch.optim.Adam)."""
        kinds = {(p.dtype, p.device) for p in model.parameters() if p.requires_grad}
        return len(kinds) == 1 and next(iter(kinds))[0].is_floating_point

    def zero_grad(self) -> None:
        self._in_use.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every parameter at once (Kingma & Ba, with bias correction)."""
        if self.working is not None:
            self.flat.grad.copy_(self.working.grad)                          # upcast the gradients
        beta1, beta2 = self.betas
        self.steps += 1
        grad = self.flat.grad
        self.exp_avg.lerp_(grad, 1 - beta1)                                  # m ← β₁m + (1−β₁)g
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)    # v ← β₂v + (1−β₂)g²
        step_size = self.lr / (1 - beta1 ** self.steps)                       # m / (1−β₁ᵗ) ...
        denom = (self.exp_avg_sq.sqrt() / (1 - beta2 ** self.steps) ** 0.5).add_(self.eps)  # ... / √(v / (1−β₂ᵗ))
        self.flat.addcdiv_(self.exp_avg, denom, value=-step_size)
        if self.working is not None:
            self.working.copy_(self.flat)                                     # refresh the working copy

    @contextmanager
    def master_weights(self) -> Iterator[None]:
        """Inside the block the model computes with the float32 master weights."""
        if self.working is None:
            yield
            return
        self._point_params_at(self.flat)
        try:
            yield
        finally:
            self._point_params_at(self.working)

    def finish(self) -> None:
        """Leave the model on the master weights (float32), e.g. when training is over."""
        if self.working is not None:
            self._point_params_at(self.flat)
            self.working = None

    def check_gradients(self) -> None:
        """Raise if some parameter's gradient no longer lives in the flat buffer."""
        flat_grad = self._in_use.grad
        for p in self.params:
            if p.grad is None or p.grad.untyped_storage().data_ptr() != flat_grad.untyped_storage().data_ptr():
                raise RuntimeError("a parameter's .grad was replaced during training (e.g. by "
                                   "zero_grad(set_to_none=True) inside the model); fit keeps gradients "
                                   "in one flat buffer: zero them with .zero_() or leave them to fit")


def _make_adam(model: torch.nn.Module, lr: float, working_dtype: torch.dtype | None = None):
    """FlatAdam where it applies (with a ``working_dtype`` copy of the weights for mixed
    precision), else PyTorch's Adam, fused where the device has the kernel."""
    if FlatAdam.supports(model):
        return FlatAdam(model, lr, working_dtype=working_dtype)
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # a device without a fused kernel
        return torch.optim.Adam(params, lr=lr, foreach=params[0].device.type != "cpu")


def fit(model: torch.nn.Module, x_train, y_train, x_val=None, y_val=None, *, epochs: int,
        batch_size: int = 64, lr: float = 1e-3, device: torch.device | str | None = None,
        seed: int | None = None, progress: bool = True, max_steps: int | None = None,
        cpu_threads: int | None = None, mixed_precision: bool | None = None) -> History:
    """Train ``model`` with Adam and cross-entropy on integer labels; return the history.

    Args:
        model: maps a batch of inputs (B, ...) to logits (B, C).
        x_train: (N, ...) float inputs; y_train: (N,) class indices.
        x_val, y_val: optional held-out split, evaluated after every epoch.
        epochs: passes over the training data; ``max_steps`` stops earlier (quick runs).
        seed: seeds the order of the batches; None draws it from torch's global generator,
            so one ``seed_everything`` call fixes the whole run.
        cpu_threads: intra-op threads while training (None: torch's current setting); fewer
            threads help when other work shares the cores.
        mixed_precision: train under bf16 autocast with a bf16 working copy of the weights
            (:class:`FlatAdam`); None: on CUDA only (see the module docstring for CPUs).
            Evaluation always uses the full-precision weights.

    The model's trainable parameters (and their gradients) are left as views into one flat
    buffer of their own dtype (:class:`FlatAdam`'s master weights): the same values, dtype and
    shapes, one storage underneath — also when training stops early with an exception or an
    interrupt.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    device = torch.device(device) if device is not None else get_device()
    if device.type == "cpu":
        keep_freed_memory()   # no page faults for every step's fresh activations (vitcourse.device)
    model.to(device)
    x_train, y_train = _as_tensors(x_train, y_train, device)
    has_val = x_val is not None and y_val is not None
    if has_val:
        x_val, y_val = _as_tensors(x_val, y_val, device)
    amp_dtype = autocast_dtype(device, mixed_precision)
    optimizer = _make_adam(model, lr, working_dtype=amp_dtype)
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()))
    order = torch.Generator().manual_seed(seed)
    history = History()
    steps_per_epoch = -(-len(x_train) // batch_size)
    total = steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs)
    bar = progress_bar(total, f"training {type(model).__name__}", enabled=progress)
    step = 0
    try:
        with _cpu_threads(cpu_threads):
            for _ in range(epochs):
                start = time.perf_counter()
                model.train()
                loss_sum = torch.zeros((), device=device)
                correct = torch.zeros((), device=device, dtype=torch.int64)
                seen = 0
                for idx in torch.randperm(len(x_train), generator=order).to(device).split(batch_size):
                    inputs, labels = x_train[idx], y_train[idx]
                    with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                        enabled=amp_dtype is not None):
                        logits = model(inputs)
                        loss = F.cross_entropy(logits, labels)   # autocast computes it in float32
                    optimizer.zero_grad()
                    loss.backward()
                    if step == 0 and isinstance(optimizer, FlatAdam):
                        optimizer.check_gradients()
                    optimizer.step()
                    # Accumulate on the device: .item() every step would stall a GPU.
                    loss_sum += loss.detach() * len(idx)
                    correct += (logits.detach().argmax(dim=-1) == labels).sum()
                    seen += len(idx)
                    step += 1
                    bar.update()
                    if step >= total:
                        break
                history.train_loss.append(float(loss_sum) / seen)
                history.train_acc.append(float(correct) / seen)
                if has_val:
                    with _master_weights(optimizer):
                        val_loss, val_acc = evaluate(model, x_val, y_val)   # float32
                    history.val_loss.append(val_loss)
                    history.val_acc.append(val_acc)
                    bar.set_postfix(val_acc=fmt(val_acc, "acc"))
                history.seconds.append(time.perf_counter() - start)
                if step >= total:
                    break
    finally:
        bar.close()
        if isinstance(optimizer, FlatAdam):
            optimizer.finish()   # the model leaves fit on its float32 weights, even when interrupted
    return history


def _eval_batch_size(device: torch.device, batch_size: int | None) -> int:
    if batch_size is None:
        return 1000 if device.type == "cuda" else 256
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return batch_size


def _master_weights(optimizer):
    return optimizer.master_weights() if isinstance(optimizer, FlatAdam) else nullcontext()


@torch.inference_mode()
def evaluate(model: torch.nn.Module, x, y, batch_size: int | None = None) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy) of ``model`` on ``x``, ``y``, in eval mode, float32."""
    device = next(model.parameters()).device
    batch_size = _eval_batch_size(device, batch_size)
    x, y = _as_tensors(x, y, device)
    was_training = model.training
    model.eval()
    try:
        loss_sum, correct = 0.0, 0
        for start in range(0, len(x), batch_size):
            logits = model(x[start:start + batch_size])
            labels = y[start:start + batch_size]
            loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
            correct += int((logits.argmax(dim=-1) == labels).sum())
    finally:
        model.train(was_training)
    return loss_sum / len(x), correct / len(x)


@torch.inference_mode()
def predict(model: torch.nn.Module, x, batch_size: int | None = None) -> torch.Tensor:
    """Predicted class indices (N,) for inputs ``x`` (N, ...), in eval mode, on the CPU."""
    device = next(model.parameters()).device
    batch_size = _eval_batch_size(device, batch_size)
    x = torch.as_tensor(x)
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[s:s + batch_size].to(device)).argmax(dim=-1).cpu()
                          for s in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)
