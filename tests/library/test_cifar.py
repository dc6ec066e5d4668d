"""The CIFAR-10 recipe (vitcourse.cifar): schedule, augmentation, loss, optimiser, checkpoints, DDP."""

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler

from vitcourse import cifar
from vitcourse.augment import BatchAugment, cutmix, cutmix_box, mixup, random_crop, random_flip
from vitcourse.cifar import CifarTrainer, Recipe, per_class_table, quick_vit_recipe, random_cifar_like
from vitcourse.classification import smooth_targets, soft_cross_entropy
from vitcourse.engine import load_checkpoint, make_adamw, save_checkpoint, shard, warmup_cosine
from vitcourse.costs import param_count
from vitcourse.device import autocast_dtype
from vitcourse.vit import ViTConfig, VisionTransformer

ROOT = Path(__file__).resolve().parents[2]
TINY = ViTConfig(image_size=32, patch_size=8, dim=32, depth=2, heads=2, dropout=0.1, drop_path=0.2)


def tiny_recipe(**changes) -> Recipe:
    base = Recipe(model=TINY, epochs=2, batch_size=16, warmup_epochs=0.5, mixup_alpha=0.8, cutmix_alpha=1.0,
                  mix_prob=1.0, seed=3)
    return replace(base, **changes)


def tiny_trainer(**changes) -> CifarTrainer:
    return CifarTrainer(tiny_recipe(**changes), *random_cifar_like(64, 40, seed=1),
                        dist_info=cifar.Dist(device=torch.device("cpu")))


# -- schedule -------------------------------------------------------------------------------------

def test_warmup_cosine_at_chosen_steps():
    at = lambda step, **kw: warmup_cosine(step, total_steps=110, warmup_steps=10, **kw)
    assert at(0) == pytest.approx(0.1)               # (0 + 1) / 10: the first step already moves
    assert at(4) == pytest.approx(0.5)
    assert at(9) == pytest.approx(1.0)
    assert at(10) == pytest.approx(1.0)               # the cosine starts at its top
    assert at(60) == pytest.approx(0.5)               # half way through the cosine: (1 + cos π/2) / 2
    assert at(35) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    assert at(110) == pytest.approx(0.0)
    assert at(60, min_ratio=0.1) == pytest.approx(0.55)
    assert at(110, min_ratio=0.1) == pytest.approx(0.1)
    assert warmup_cosine(0, total_steps=4, warmup_steps=0) == pytest.approx(1.0)


def test_warmup_must_fit_in_the_run():
    with pytest.raises(ValueError, match="need 0 ≤ warmup_steps < total_steps, got 10 and 10"):
        warmup_cosine(0, total_steps=10, warmup_steps=10)


# -- augmentation ---------------------------------------------------------------------------------

def ramp_images(batch=6, size=8):
    """Every pixel different, and no image equal to its own mirror image."""
    return torch.arange(batch * 3 * size * size, dtype=torch.float32).reshape(batch, 3, size, size) + 1


def test_random_crop_is_a_shift_with_a_zero_border():
    images = ramp_images()
    out = random_crop(images, 2, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    padded = F.pad(images, (2, 2, 2, 2))
    for i in range(len(images)):
        windows = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(out[i], padded[i, :, dy:dy + 8, dx:dx + 8])]
        assert len(windows) == 1, f"image {i} is not one window of the padded image"
    assert random_crop(images, 0, torch.Generator()) is images


def test_random_flip_mirrors_exactly_the_chosen_images():
    images = ramp_images(batch=64)
    out = random_flip(images, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, images)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, images)])
    assert (flipped ^ kept).all()
    assert 16 < int(flipped.sum()) < 48
    assert torch.equal(out[flipped][:, :, :, 0], images[flipped][:, :, :, -1])   # left column came from the right


def test_augmentation_is_deterministic_for_a_seed_and_keeps_shapes_and_dtypes():
    images, targets = torch.rand(8, 3, 32, 32), smooth_targets(torch.arange(8) % 10, 10, 0.1)
    make = lambda seed: BatchAugment(crop_padding=4, mixup_alpha=0.8, cutmix_alpha=1.0, mix_prob=1.0, seed=seed)
    first, second, other = make(7), make(7), make(8)
    out = [first(images, targets) for _ in range(3)]
    again = [second(images, targets) for _ in range(3)]
    for (x, t), (x2, t2) in zip(out, again):
        assert x.shape == images.shape and x.dtype == images.dtype and t.shape == targets.shape
        assert torch.equal(x, x2) and torch.equal(t, t2)
        assert torch.allclose(t.sum(-1), torch.ones(8))
    assert not torch.equal(other(images, targets)[0], out[0][0])


def test_augmentation_is_a_no_op_in_eval_mode():
    augment = BatchAugment(crop_padding=4, mixup_alpha=0.8, cutmix_alpha=1.0, mix_prob=1.0).eval()
    images, targets = torch.rand(4, 3, 32, 32), torch.eye(10)[:4]
    out_images, out_targets = augment(images, targets)
    assert out_images is images and out_targets is targets


def test_mixup_blends_with_the_mirrored_batch():
    images, targets = torch.rand(4, 3, 2, 2), torch.eye(4)
    mixed, mixed_targets = mixup(images, targets, 0.3)
    assert torch.allclose(mixed[0], 0.3 * images[0] + 0.7 * images[3])
    assert torch.allclose(mixed_targets[0], torch.tensor([0.3, 0.0, 0.0, 0.7]))


def test_cutmix_pastes_a_box_and_weights_targets_by_area():
    images, targets = torch.rand(2, 3, 8, 8), torch.eye(2)
    mixed, mixed_targets = cutmix(images, targets, (2, 6, 0, 4))               # 4 × 4 of 64 pixels = 1/4
    assert torch.equal(mixed[0, :, 2:6, 0:4], images[1, :, 2:6, 0:4])
    assert torch.equal(mixed[0, :, :2], images[0, :, :2])
    assert torch.allclose(mixed_targets[0], torch.tensor([0.75, 0.25]))


def test_cutmix_box_stays_inside_the_image():
    import random
    rng = random.Random(0)
    for lam in (0.0, 0.3, 0.9, 1.0):
        top, bottom, left, right = cutmix_box(32, 32, lam, rng)
        assert 0 <= top <= bottom <= 32 and 0 <= left <= right <= 32


def test_augmentation_needs_its_generator_on_the_images_device():
    augment = BatchAugment(device="cpu")
    with pytest.raises(ValueError, match="build BatchAugment with device=meta"):
        augment(torch.empty(2, 3, 32, 32, device="meta"), torch.empty(2, 10, device="meta"))


# -- loss, optimiser, precision ---------------------------------------------------------------------

def test_label_smoothing_loss_by_hand():
    logits, labels = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
    targets = smooth_targets(labels, 3, 0.3)
    assert torch.allclose(targets, torch.tensor([[0.8, 0.1, 0.1]]))
    log_z = math.log(math.exp(2.0) + math.exp(0.0) + math.exp(-1.0))
    by_hand = -(0.8 * (2.0 - log_z) + 0.1 * (0.0 - log_z) + 0.1 * (-1.0 - log_z))
    assert soft_cross_entropy(logits, targets).item() == pytest.approx(by_hand, rel=1e-6)
    logits, labels = torch.randn(16, 10), torch.randint(0, 10, (16,))
    assert torch.allclose(soft_cross_entropy(logits, smooth_targets(labels, 10, 0.1)),
                          F.cross_entropy(logits, labels, label_smoothing=0.1), atol=1e-6)


def test_smooth_targets_wants_int64_labels():
    with pytest.raises(ValueError, match="labels must be int64 of shape"):
        smooth_targets(torch.tensor([0.0, 1.0]), 10, 0.1)


def test_adamw_decays_only_weight_matrices():
    model = VisionTransformer(TINY)
    decay, no_decay = make_adamw(model, 1e-3, 0.05, torch.device("cpu")).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = sorted(names[id(p)] for p in decay["params"])
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(n.endswith(".weight") and "norm" not in n for n in decayed)
    assert {"patch_embed.proj.weight", "head.weight", "blocks.0.attn.qkv.weight", "blocks.1.mlp.fc2.weight"} <= set(decayed)
    not_decayed = {names[id(p)] for p in no_decay["params"]}
    assert {"cls_token", "pos_embed", "norm.weight", "head.bias", "blocks.0.norm1.weight"} <= not_decayed
    assert len(decayed) + len(not_decayed) == len(names)


def test_autocast_dtype_choice():
    assert autocast_dtype("cpu") is None                       # float32 on CPUs by default
    assert autocast_dtype("cpu", enabled=True) is torch.bfloat16
    if not torch.cuda.is_available():                           # on a GPU machine the answer depends on the GPU
        assert autocast_dtype("cuda") is torch.bfloat16
    assert autocast_dtype("cuda", enabled=False) is None


def test_bf16_autocast_on_cpu_trains():
    trainer = tiny_trainer(bf16=True)
    assert trainer.amp_dtype is torch.bfloat16
    loss = trainer.train_step(trainer.x_train[:16], trainer.y_train[:16])
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


# -- trainer, checkpoints ---------------------------------------------------------------------------

def test_fit_records_one_row_per_epoch_and_evaluate_agrees_with_the_confusion_matrix():
    trainer = tiny_trainer()
    history = trainer.fit(progress=False)
    assert list(history.index) == [1, 2] and trainer.step == trainer.total_steps == 8
    loss, accuracy, confusion = trainer.evaluate()
    assert confusion.sum() == 40 and accuracy == np.trace(confusion) / 40
    assert history["test_acc"].iloc[-1] == accuracy
    assert history["lr"].iloc[0] > history["lr"].iloc[-1]


def test_resume_gives_identical_next_step(tmp_path):
    path = tmp_path / "run" / "vit.pt"
    first = tiny_trainer()
    first.fit(until_step=5, progress=False)                    # one epoch (4 steps) and a step into the next
    assert len(first.history()) == 1
    first.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["vit.pt"]    # no temporary file left behind
    next_loss = first.train_step(*_next_batch(first))
    second = tiny_trainer()
    second.fit(until_step=2, progress=False)                   # other weights, optimiser state and generators
    second.load(path)
    assert second.step == 5 and second.history().equals(first.history())
    resumed_loss = second.train_step(*_next_batch(second))
    assert resumed_loss.item() == next_loss.item()
    for (name, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), name


def _next_batch(trainer):
    epoch, offset = divmod(trainer.step, trainer.steps_per_epoch)
    index = trainer.epoch_batches(epoch)[offset]
    return trainer.x_train[index], trainer.y_train[index]


def test_resume_refuses_a_different_recipe(tmp_path):
    trainer = tiny_trainer()
    trainer.save(tmp_path / "a.pt")
    other = tiny_trainer(model=replace(TINY, dim=64), lr=0.5)
    with pytest.raises(ValueError, match=r"different recipe: lr: checkpoint 0.001, now 0.5; model: .*'dim': 32"):
        other.load(tmp_path / "a.pt")
    tiny_trainer(compile=False, bf16=True).load(tmp_path / "a.pt")       # how it runs may change
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        other.load(tmp_path / "missing.pt")


def test_a_failed_write_keeps_the_old_checkpoint(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"step": 1})
    with pytest.raises(Exception):
        save_checkpoint(path, {"step": 2, "bad": lambda: None})     # cannot be pickled
    assert load_checkpoint(path) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


def test_a_failing_compiler_falls_back_to_eager(monkeypatch):
    class Broken(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self._orig_mod = inner

        def forward(self, images):
            raise RuntimeError("backend compiler failed")

    monkeypatch.setattr(torch, "compile", Broken)
    trainer = tiny_trainer(compile=True)
    with pytest.warns(UserWarning, match="torch.compile failed here .*training eagerly"):
        loss = trainer.train_step(trainer.x_train[:16], trainer.y_train[:16])
    assert torch.isfinite(loss) and trainer.use_compile is False and trainer.network is trainer.model


def test_trainer_refuses_a_batch_bigger_than_the_data():
    with pytest.raises(ValueError, match="batch_size=128 is larger than the 64 training images"):
        tiny_trainer(batch_size=128)


def test_per_class_table_from_a_confusion_matrix():
    confusion = np.array([[8, 2, 0], [1, 5, 4], [0, 0, 10]])
    table = per_class_table(confusion, ["a", "b", "c"])
    assert table["accuracy"].tolist() == [0.8, 0.5, 1.0]
    assert table["images"].tolist() == [10, 10, 10]
    assert table.loc["b", "most confused with"] == "c"
    with pytest.raises(ValueError, match="need a square"):
        per_class_table(confusion[:2], ["a", "b", "c"])


def test_quick_recipe_is_small_and_the_full_one_is_the_real_recipe():
    quick, full = quick_vit_recipe(), cifar.full_vit_recipe()
    assert quick.train_subset and quick.model.dim < full.model.dim
    assert full.train_subset is None and full.model.patch_size == 4
    assert 2_500_000 < param_count(full.model) < 6_000_000


# -- several processes ------------------------------------------------------------------------------

@pytest.mark.parametrize("world", [1, 2, 3])
def test_shard_matches_distributed_sampler(world):
    order = torch.arange(10)
    for rank in range(world):
        expected = list(DistributedSampler(range(10), num_replicas=world, rank=rank, shuffle=False))
        assert shard(order, rank, world).tolist() == expected


def _run_cli(args, *, nproc=None, timeout=120):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc \
        else [sys.executable]
    command = launcher + ["-m", "vitcourse.cifar", "--profile", "quick", "--data", "random", "--device", "cpu",
                          "--train-subset", "256", "--test-subset", "64", "--batch-size", "32", "--no-progress", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_command_line_single_process(tmp_path):
    run = _run_cli(["--max-steps", "2", "--summary", str(tmp_path / "s.json"), "--checkpoint", str(tmp_path / "c.pt")])
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["steps"] == 2 and summary["processes"] == 1 and summary["data"] == "random"
    assert summary["resumed_from_step"] == 0
    again = _run_cli(["--max-steps", "4", "--resume", "--summary", str(tmp_path / "s.json"),
                      "--checkpoint", str(tmp_path / "c.pt")])
    assert again.returncode == 0, again.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["resumed_from_step"] == 2 and summary["steps"] == 4


def test_ddp_two_processes_on_gloo(tmp_path):
    start = time.perf_counter()
    run = _run_cli(["--max-steps", "2", "--summary", str(tmp_path / "s.json")], nproc=2)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    # Each process took half of every 32-image batch; the end-of-run check found the replicas identical.
    assert summary["processes"] == 2 and summary["steps"] == 2
    print(f"2-process DDP smoke test: {time.perf_counter() - start:.1f} s")


# -- the ablation: no augmentation against crop + flip + label smoothing ------------------------------

def test_the_ablation_arms_differ_in_the_regularisers_only():
    base = tiny_recipe(crop_padding=2, flip=False, label_smoothing=0.3)
    arms = cifar.ablation_arms(base)
    assert list(arms) == [cifar.NO_AUGMENTATION, cifar.CROP_FLIP_SMOOTH]
    off, on = arms.values()
    assert (off.crop_padding, off.flip, off.label_smoothing) == (0, False, 0.0)
    assert (on.crop_padding, on.flip, on.label_smoothing) == (4, True, 0.1)   # the full recipe's
    regularisers = {"crop_padding", "flip", "label_smoothing", "mixup_alpha", "cutmix_alpha", "mix_prob"}
    for arm in (off, on):
        assert (arm.mixup_alpha, arm.cutmix_alpha, arm.mix_prob) == (0.0, 0.0, 0.0)
        assert {k: v for k, v in vars(arm).items() if k not in regularisers} == \
            {k: v for k, v in vars(base).items() if k not in regularisers}


def test_the_ablation_budget_is_the_same_small_one_in_both_profiles():
    recipe = cifar.ablation_recipe()
    assert (recipe.train_subset, recipe.test_subset, recipe.epochs, recipe.batch_size) == (600, 500, 15, 50)
    assert recipe.model == cifar.QUICK_VIT and recipe.compile is False and recipe.bf16 is False
    assert cifar.ablation_recipe(epochs=3).epochs == 3


def test_evaluate_on_the_test_images_is_the_trainers_own_evaluation():
    trainer = tiny_trainer()
    trainer.fit(progress=False)
    x_test, y_test = trainer.x_test, trainer.y_test
    loss, accuracy, _ = trainer.evaluate()
    assert cifar.evaluate_on(trainer, x_test, y_test) == (loss, accuracy)
    # the arrays as the data sets give them, (N, H, W, 3) uint8, give the same numbers
    _, _, x_raw, y_raw = random_cifar_like(64, 40, seed=1)
    assert cifar.evaluate_on(trainer, x_raw, y_raw) == (loss, accuracy)
    train_loss, train_accuracy = cifar.evaluate_on(trainer, trainer.x_train, trainer.y_train)
    assert train_loss > 0 and train_accuracy * 64 == round(train_accuracy * 64)
    assert trainer.x_test is x_test and trainer.y_test is y_test          # put back


def test_evaluate_on_refuses_mismatched_labels_and_puts_the_test_set_back_after_a_failure():
    trainer = tiny_trainer()
    x_test = trainer.x_test
    with pytest.raises(ValueError, match="got 64 images but 63 labels; pass one label per image"):
        cifar.evaluate_on(trainer, trainer.x_train, trainer.y_train[:63])
    with pytest.raises(ValueError, match=r"expected uint8 colour images \(N, H, W, 3\)"):
        cifar.evaluate_on(trainer, np.zeros((4, 32, 32, 3), np.float32), np.zeros(4, int))
    with pytest.raises(ValueError, match=r"labels must be class indices 0\.\.9, got 0\.\.99"):
        cifar.evaluate_on(trainer, trainer.x_train[:4], torch.tensor([0, 1, 2, 99]))
    assert trainer.x_test is x_test


def test_run_ablation_trains_both_arms_per_seed_and_scores_the_training_images_cleanly():
    arrays = random_cifar_like(64, 40, seed=1)
    base = tiny_recipe(epochs=2, warmup_epochs=0.5, mixup_alpha=0.0, cutmix_alpha=0.0, mix_prob=0.0)
    runs = cifar.run_ablation(base, *arrays, seeds=(0, 1))
    assert len(runs) == 2 * 2 * 2 and list(runs.columns) == [
        "arm", "seed", "epoch", "train_loss", "train_acc", "test_loss", "test_acc"]
    # the last epoch of a run is that recipe's own run, scored with evaluate_on on its training images
    trainer = CifarTrainer(replace(cifar.ablation_arms(base)[cifar.CROP_FLIP_SMOOTH], seed=1), *arrays)
    trainer.fit(progress=False)
    row = runs.set_index(["arm", "seed", "epoch"]).loc[(cifar.CROP_FLIP_SMOOTH, 1, 2)]
    assert (row["train_loss"], row["train_acc"]) == cifar.evaluate_on(trainer, trainer.x_train, trainer.y_train)
    assert (row["test_loss"], row["test_acc"]) == trainer.evaluate()[:2]
    summary = cifar.ablation_summary(runs)
    last = runs[runs["epoch"] == 2]
    for arm, part in last.groupby("arm"):
        gaps = part["test_loss"] - part["train_loss"]
        assert summary.loc[arm, "gap"] == pytest.approx(gaps.mean())
        assert (summary.loc[arm, "gap_min"], summary.loc[arm, "gap_max"]) == (gaps.min(), gaps.max())
    with pytest.raises(ValueError, match="at least one seed"):
        cifar.run_ablation(base, *arrays, seeds=())


def _ablation_table(gaps: dict, test_acc: dict, train_acc: dict) -> "pd.DataFrame":
    """A run_ablation table's last epoch: one row per (arm, seed), training loss 1.0."""
    import pandas as pd

    rows = [{"arm": arm, "seed": seed, "epoch": 5, "train_loss": 1.0, "test_loss": 1.0 + gap,
             "train_acc": train_acc[arm], "test_acc": test_acc[arm][seed]}
            for arm in gaps for seed, gap in enumerate(gaps[arm])]
    return pd.DataFrame(rows + [{**rows[0], "epoch": 1, "test_loss": 9.0}])   # an earlier epoch is ignored


def test_ablation_findings_claim_only_what_every_seed_shows():
    none, reg = cifar.NO_AUGMENTATION, cifar.CROP_FLIP_SMOOTH
    runs = _ablation_table({none: [0.4, 0.45], reg: [0.1, 0.08]}, {none: [0.55, 0.54], reg: [0.50, 0.51]},
                           {none: 0.7, reg: 0.52})
    said = cifar.ablation_findings(runs)
    assert said["gap"].startswith("In both seeds the gap between test and training loss was larger "
                                  "without augmentation (0.400 to 0.450) than with crop, flip and label "
                                  "smoothing (0.080 to 0.100)")
    assert said["test"].startswith("Test accuracy was *lower* with augmentation in both seeds "
                                   "(by 3.0 to 5.0 points)")
    assert "training accuracy 52.0 % with it against 70.0 % without" in said["test"]
    overlapping = _ablation_table({none: [0.4, 0.1], reg: [0.2, 0.3]}, {none: [0.5, 0.5], reg: [0.6, 0.4]},
                                  {none: 0.7, reg: 0.6})
    said = cifar.ablation_findings(overlapping)
    assert "overlap" in said["gap"] and "does not separate" in said["gap"]
    assert "moved both ways" in said["test"] and "does not say" in said["test"]
    better = _ablation_table({none: [0.4], reg: [0.5]}, {none: [0.5], reg: [0.53]}, {none: 0.7, reg: 0.6})
    said = cifar.ablation_findings(better)
    assert said["gap"].startswith("In the one seed the gap was larger *with*")
    assert said["test"].startswith("Test accuracy was higher with augmentation in the one seed (by 3.0 points)")
    with pytest.raises(ValueError, match="not a run_ablation table: no column test_acc"):
        cifar.ablation_findings(runs.drop(columns="test_acc"))


def test_timed_fit_trains_to_the_end_and_returns_cpu_seconds_on_a_cpu(monkeypatch):
    trainer = tiny_trainer()
    clock = iter([10.0, 12.5])
    monkeypatch.setattr(cifar.time, "process_time", lambda: next(clock))
    assert cifar.timed_fit(trainer) == 2.5 and trainer.step == trainer.total_steps
