"""DINO (vitcourse.dino): head, multi-crop, loss, centring, EMA teacher, k-NN, official checkpoints."""

import json
import math
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitcourse import dino
from vitcourse.augment import random_resized_crop
from vitcourse.dino import (DINOHead, DINOLoss, DINONetwork, DINOTrainer, backbone_tokens, dino_loss, ema_momentum,
                            ema_update, from_official_state_dict, knn_accuracy, knn_predict,
                            load_official_dino, make_backbone, multi_crop, official_dino_config,
                            quick_dino_recipe, random_official_state_dict, teacher_temperature,
                            update_center)
from tests.support import ROOT
from vitcourse.vit import ViTConfig

TINY = ViTConfig(image_size=16, patch_size=4, dim=32, depth=2, heads=4, num_classes=10)


def tiny_recipe(**changes):
    base = quick_dino_recipe(model=TINY, global_size=16, local_size=8, n_local=2, out_dim=16, hidden_dim=32,
                             bottleneck_dim=8, batch_size=8, epochs=2, warmup_epochs=0.5, train_subset=None,
                             teacher_temp=0.07, teacher_temp_warmup_epochs=1.0, freeze_last_layer_epochs=0.5)
    return replace(base, **changes)


def random_images(n, size=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# -- the loss -------------------------------------------------------------------------------------

def test_dino_loss_equals_a_value_worked_by_hand():
    # Teacher: scores [1, 0] and [0, 1], centre [.5, .5], τ_t = 0.5 → logits [1, -1], [-1, 1]
    # → p1 = [σ(2), σ(-2)] = [.8808, .1192], p2 = [.1192, .8808].
    # Student (τ_s = 1): s1 = [0, 0] → [½, ½]; s2 = [ln 3, 0] → [¾, ¼]; s3 = [0, ln 3] → [¼, ¾].
    # Pairs (teacher view, student view): (1, 2), (1, 3), (2, 1), (2, 3).
    p = 1 / (1 + math.exp(-2))
    q = 1 - p
    by_hand = (-(p * math.log(0.75) + q * math.log(0.25))
               - (p * math.log(0.25) + q * math.log(0.75))
               + math.log(2)
               - (q * math.log(0.25) + p * math.log(0.75))) / 4
    assert by_hand == pytest.approx(0.69644087, abs=1e-8)
    teacher = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])]
    student = [torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3), 0.0]]), torch.tensor([[0.0, math.log(3)]])]
    loss = dino_loss(student, teacher, torch.tensor([0.5, 0.5]), student_temp=1.0, teacher_temp=0.5)
    assert float(loss) == pytest.approx(by_hand, abs=1e-6)
    # A batch of two copies of the same example: the batch mean leaves it unchanged.
    loss2 = dino_loss([s.repeat(2, 1) for s in student], [t.repeat(2, 1) for t in teacher],
                      torch.tensor([[0.5, 0.5]]), student_temp=1.0, teacher_temp=0.5)
    assert float(loss2) == pytest.approx(by_hand, abs=1e-6)


def test_dino_loss_skips_same_view_pairs_and_needs_two_views():
    same = [torch.tensor([[3.0, 0.0]])]
    with pytest.raises(ValueError, match="at least two views"):
        dino_loss(same, same, torch.zeros(2))
    with pytest.raises(ValueError, match="teacher views but only"):
        dino_loss(same, same * 2, torch.zeros(2))


def test_dino_loss_sends_no_gradient_to_the_teacher():
    teacher = [torch.randn(4, 6, requires_grad=True) for _ in range(2)]
    student = [torch.randn(4, 6, requires_grad=True) for _ in range(4)]
    dino_loss(student, teacher, torch.zeros(6)).backward()
    assert all(t.grad is None for t in teacher)
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in student)


def test_centre_is_an_ema_of_the_teachers_batch_mean():
    center = torch.zeros(1, 2)
    teacher = [torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[5.0, 6.0], [7.0, 8.0]])]   # mean [4, 5]
    update_center(center, teacher, momentum=0.9)
    assert torch.allclose(center, torch.tensor([[0.4, 0.5]]))
    update_center(center, teacher, momentum=0.9)
    assert torch.allclose(center, torch.tensor([[0.9 * 0.4 + 0.4, 0.9 * 0.5 + 0.5]]))
    criterion = DINOLoss(2, student_temp=1.0, center_momentum=0.5)
    loss = criterion([torch.zeros(2, 2)] * 3, teacher, teacher_temp=1.0)
    # The loss used the old centre (0); the centre moved afterwards.
    assert float(loss) == pytest.approx(float(dino_loss([torch.zeros(2, 2)] * 3, teacher, torch.zeros(2),
                                                        student_temp=1.0, teacher_temp=1.0)))
    assert torch.allclose(criterion.center, torch.tensor([[2.0, 2.5]]))


def test_ema_update_and_schedules_by_hand():
    teacher, student = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        teacher.weight.fill_(1.0), teacher.bias.fill_(-1.0)
        student.weight.fill_(3.0), student.bias.fill_(1.0)
    ema_update(teacher, student, 0.9)
    assert torch.allclose(teacher.weight, torch.full((1, 2), 1.2)) and torch.allclose(teacher.bias, torch.tensor([-0.8]))
    assert ema_momentum(0, total_steps=100, base=0.996) == pytest.approx(0.996)
    assert ema_momentum(50, total_steps=100, base=0.996) == pytest.approx(0.998)
    assert ema_momentum(100, total_steps=100, base=0.996) == pytest.approx(1.0)
    assert teacher_temperature(0, warmup_steps=10, start=0.04, end=0.07) == pytest.approx(0.04)
    assert teacher_temperature(5, warmup_steps=10, start=0.04, end=0.07) == pytest.approx(0.055)
    assert teacher_temperature(10, warmup_steps=10, start=0.04, end=0.07) == 0.07
    assert teacher_temperature(3, warmup_steps=0) == 0.07


# -- head and network -------------------------------------------------------------------------------

def test_head_outputs_are_cosines_and_ignore_the_length_of_the_last_weights():
    torch.manual_seed(0)
    head = DINOHead(32, 50, hidden_dim=64, bottleneck_dim=16)
    features = torch.randn(5, 32)
    scores = head(features)
    assert scores.shape == (5, 50) and scores.abs().max() <= 1 + 1e-6
    with torch.no_grad():
        head.last_layer.weight.mul_(torch.rand(50, 1) * 10 + 0.1)      # rescale each row: weight norm undoes it
    assert torch.allclose(head(features), scores, atol=1e-6)
    assert len(head.mlp) == 5                                         # Linear, GELU, Linear, GELU, Linear


def test_backbone_reads_smaller_crops_through_interpolated_positions():
    torch.manual_seed(0)
    backbone = make_backbone(TINY).eval()
    images = torch.randn(2, 3, 16, 16)
    assert torch.equal(backbone_tokens(backbone, images), backbone.forward_features(images)[0])
    assert backbone(images).shape == (2, 32)                          # the head is gone: CLS features
    assert backbone_tokens(backbone, torch.randn(2, 3, 8, 8)).shape == (2, 5, 32)
    cls_row, same = backbone.position_rows((4, 4))
    assert torch.equal(same, backbone.pos_embed[:, 1:]) and torch.equal(cls_row, backbone.pos_embed[:, :1])
    with torch.no_grad():
        backbone.pos_embed[:, 1:] = 0.5                               # a constant table stays constant
    assert torch.allclose(backbone.position_rows((2, 2))[1], torch.full((1, 4, 32), 0.5))
    with pytest.raises(ValueError, match="multiple of the patch size 4"):
        backbone_tokens(backbone, torch.randn(1, 3, 10, 10))
    with pytest.raises(ValueError, match="pool='cls'"):
        make_backbone(replace(TINY, pool="mean"))


def test_network_batches_views_by_size_with_the_same_result():
    torch.manual_seed(0)
    network = DINONetwork(make_backbone(TINY), DINOHead(32, 12, 16, 8)).eval()
    views = [torch.randn(3, 3, 16, 16), torch.randn(3, 3, 16, 16), torch.randn(3, 3, 8, 8), torch.randn(3, 3, 8, 8)]
    together = network(views)
    alone = [network([v])[0] for v in views]
    assert [t.shape for t in together] == [(3, 12)] * 4
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(together, alone))


# -- multi-crop -----------------------------------------------------------------------------------------

def test_multi_crop_shapes_and_range():
    images = torch.rand(6, 3, 32, 32)
    views = multi_crop(images, torch.Generator().manual_seed(0), global_size=32, local_size=16, n_local=4)
    assert [tuple(v.shape) for v in views] == [(6, 3, 32, 32)] * 2 + [(6, 3, 16, 16)] * 4
    assert all(v.min() >= 0 and v.max() <= 1 for v in views)
    with pytest.raises(ValueError, match="local_scale"):
        multi_crop(images, torch.Generator(), global_size=32, local_size=16, n_local=2, local_scale=(0.5, 0.1))


def test_random_resized_crop_cuts_a_window_per_image():
    # Channel 0 holds the row index, channel 1 the column: a 4×4 window of an 8×8 image shows
    # consecutive rows and columns. Scale ¼ and ratio 1 make the box exactly 4×4 (no resizing).
    rows, cols = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    images = torch.stack([rows, cols, rows * 0]).expand(16, 3, 8, 8)
    crops = random_resized_crop(images, 4, (0.25, 0.25), torch.Generator().manual_seed(1), ratio=(1.0, 1.0))
    assert crops.shape == (16, 3, 4, 4)
    for crop in crops:
        top, left = crop[0, 0, 0], crop[1, 0, 0]
        assert torch.equal(crop[0], (top + torch.arange(4.0))[:, None].expand(4, 4))
        assert torch.equal(crop[1], (left + torch.arange(4.0))[None, :].expand(4, 4))
    assert len({(float(c[0, 0, 0]), float(c[1, 0, 0])) for c in crops}) > 1        # positions differ per image
    # The whole image at its own size: the identity.
    whole = random_resized_crop(images, 8, (1.0, 1.0), torch.Generator(), ratio=(1.0, 1.0))
    assert torch.equal(whole, images)


# -- the trainer: the teacher learns only through the EMA ------------------------------------------------

def test_teacher_gets_no_gradient_and_follows_the_student_by_ema():
    trainer = DINOTrainer(tiny_recipe(), random_images(32), device="cpu")
    assert all(not p.requires_grad for p in trainer.teacher.parameters())
    before = [p.clone() for p in trainer.teacher.parameters()]
    last_layer = trainer.student.head.last_layer.weight.clone()
    momentum = ema_momentum(0, total_steps=trainer.total_steps, base=trainer.recipe.momentum)
    loss, entropy = trainer.train_step(trainer.x_train[:8])
    assert torch.isfinite(loss) and 0 <= float(entropy) <= math.log(16) + 1e-6
    assert all(p.grad is None for p in trainer.teacher.parameters())
    for old, new, student in zip(before, trainer.teacher.parameters(), trainer.student.parameters()):
        assert torch.allclose(new, momentum * old + (1 - momentum) * student, atol=1e-6)
    # The first steps keep the student's last layer still (freeze_last_layer); the rest moved.
    assert torch.equal(trainer.student.head.last_layer.weight, last_layer)
    assert not torch.equal(trainer.student.head.mlp[0].weight, trainer.teacher.head.mlp[0].weight)


def test_trainer_runs_the_recipe_and_records_each_epoch():
    trainer = DINOTrainer(tiny_recipe(), random_images(32), device="cpu")
    history = trainer.fit(progress=False)
    assert list(history.index) == [1, 2] and trainer.step == trainer.total_steps == 8
    assert np.isfinite(history["loss"]).all()
    assert history["teacher_temp"].iloc[-1] == pytest.approx(0.07)
    steps = trainer.steps()
    assert len(steps) == 8 and steps["loss"].iloc[:4].mean() == pytest.approx(history.loc[1, "loss"], rel=1e-5)
    assert not torch.equal(trainer.teacher_backbone.pos_embed, make_backbone(TINY).pos_embed)


def test_recipe_rejects_inconsistent_sizes():
    with pytest.raises(ValueError, match="global_size=32 must equal the model's image_size=16"):
        tiny_recipe(global_size=32)
    with pytest.raises(ValueError, match="local_size=6 must be a multiple of the patch size 4"):
        tiny_recipe(local_size=6)
    with pytest.raises(ValueError, match="larger than the 4 training images"):
        DINOTrainer(tiny_recipe(), random_images(4), device="cpu")


# -- k-NN ---------------------------------------------------------------------------------------------

def test_knn_on_a_trivially_separable_toy_is_perfect():
    generator = torch.Generator().manual_seed(0)
    centres = torch.eye(3, 8) * 5
    labels = torch.arange(3).repeat_interleave(30)
    train = centres[labels] + 0.3 * torch.randn(90, 8, generator=generator)
    test_labels = torch.arange(3).repeat_interleave(10)
    test = centres[test_labels] + 0.3 * torch.randn(30, 8, generator=generator)
    assert knn_accuracy(train, labels, test, test_labels, k=20) == 1.0


def test_knn_votes_are_weighted_by_similarity():
    # One training image identical to the query (class 0), two at cosine 0.5 (class 1), k = 3.
    # Weights exp(1/0.07) ≈ 1.6e6 against 2·exp(0.5/0.07) ≈ 2.5e3: class 0 wins, a plain majority would not.
    train = torch.tensor([[1.0, 0.0], [0.5, math.sqrt(0.75)], [0.5, -math.sqrt(0.75)]])
    assert knn_predict(train, torch.tensor([0, 1, 1]), torch.tensor([[1.0, 0.0]]), k=3).tolist() == [0]
    assert knn_predict(train, torch.tensor([0, 1, 1]), torch.tensor([[1.0, 0.0]]), k=3,
                       temperature=100.0).tolist() == [1]
    with pytest.raises(ValueError, match=r"k must be in \[1, 3\]"):
        knn_predict(train, torch.tensor([0, 1, 1]), train, k=20)


# -- official checkpoints -------------------------------------------------------------------------------

# The names facebookresearch/dino's vision_transformer.py gives one block's parameters, written out.
OFFICIAL_BLOCK_KEYS = ["norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
                       "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                       "mlp.fc2.weight", "mlp.fc2.bias"]


def official_keys(depth):
    return ({"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias"}
            | {f"blocks.{i}.{k}" for i in range(depth) for k in OFFICIAL_BLOCK_KEYS})


@pytest.mark.parametrize("arch, patch, positions", [("S/16", 16, 197), ("S/8", 8, 785)])
def test_the_real_small_layouts_fit_the_course_model_on_meta(arch, patch, positions):
    state = random_official_state_dict(arch, device="meta")
    assert set(state) == official_keys(12)
    assert tuple(state["pos_embed"].shape) == (1, positions, 384)
    assert tuple(state["patch_embed.proj.weight"].shape) == (384, 3, patch, patch)
    assert tuple(state["blocks.11.attn.qkv.weight"].shape) == (1152, 384)
    assert tuple(state["blocks.0.mlp.fc1.weight"].shape) == (1536, 384)
    with torch.device("meta"):
        model = make_backbone(official_dino_config(arch))
    mapped = from_official_state_dict(state, model)
    assert set(mapped) == set(model.state_dict())
    model.load_state_dict(mapped, assign=True)


def reference_dino_forward(state, images, depth, heads=6, eps=1e-6):
    """The official DINO ViT's forward, written from its source with plain tensor ops: CLS features (B, D)."""
    x = F.conv2d(images, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=16)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([state["cls_token"].expand(len(x), -1, -1), x], dim=1) + state["pos_embed"]
    batch, tokens, dim = x.shape
    for i in range(depth):
        p = lambda name: state[f"blocks.{i}.{name}"]   # noqa: E731
        h = F.layer_norm(x, (dim,), p("norm1.weight"), p("norm1.bias"), eps)
        qkv = F.linear(h, p("attn.qkv.weight"), p("attn.qkv.bias")).reshape(batch, tokens, 3, heads, dim // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * (dim // heads) ** -0.5).softmax(-1)
        x = x + F.linear((attn @ v).transpose(1, 2).reshape(batch, tokens, dim), p("attn.proj.weight"),
                         p("attn.proj.bias"))
        h = F.layer_norm(x, (dim,), p("norm2.weight"), p("norm2.bias"), eps)
        x = x + F.linear(F.gelu(F.linear(h, p("mlp.fc1.weight"), p("mlp.fc1.bias"))), p("mlp.fc2.weight"),
                         p("mlp.fc2.bias"))
    return F.layer_norm(x, (dim,), state["norm.weight"], state["norm.bias"], eps)[:, 0]


@torch.no_grad()
def test_loaded_weights_compute_what_the_official_model_computes(tmp_path):
    state = random_official_state_dict("S/16", depth=2, seed=3)
    path = tmp_path / "dino_2blocks.pth"
    torch.save(state, path)
    model = make_backbone(replace(official_dino_config("S/16"), depth=2)).eval()
    model.load_state_dict(from_official_state_dict(torch.load(path, weights_only=True), model))
    images = torch.randn(2, 3, 224, 224)
    assert torch.allclose(model(images), reference_dino_forward(state, images, depth=2), atol=1e-4)
    # A full training checkpoint: the teacher's weights, behind 'module.backbone.', with a head to drop.
    full = {"teacher": {**{f"module.backbone.{k}": v for k, v in state.items()},
                        "module.head.last_layer.weight_g": torch.ones(3, 1)},
            "student": {}}
    again = make_backbone(replace(official_dino_config("S/16"), depth=2)).eval()
    again.load_state_dict(from_official_state_dict(full, again))
    assert torch.equal(again(images), model(images))


@torch.no_grad()
def test_load_official_dino_reads_a_full_s16_file(tmp_path):
    path = tmp_path / "dino_deitsmall16_pretrain.pth"
    torch.save(random_official_state_dict("S/16", seed=1), path)
    model = load_official_dino(path, arch="S/16")
    assert not model.training and model.config.dim == 384 and model.config.depth == 12
    assert torch.equal(model.blocks[11].mlp.fc2.bias, torch.load(path, weights_only=True)["blocks.11.mlp.fc2.bias"])
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 384)


def test_mapping_names_missing_extra_and_misshapen_keys():
    model = make_backbone(replace(official_dino_config("S/16"), depth=1))
    state = random_official_state_dict("S/16", depth=1)
    missing = {k: v for k, v in state.items() if k != "blocks.0.attn.qkv.bias"}
    with pytest.raises(ValueError, match=r"missing 1 key\(s\): blocks.0.attn.qkv.bias"):
        from_official_state_dict(missing, model)
    with pytest.raises(ValueError, match=r"unexpected 1 key\(s\): blocks.1.norm1.weight"):
        from_official_state_dict({**state, "blocks.1.norm1.weight": torch.ones(384)}, model)
    with pytest.raises(ValueError, match=r"pos_embed has shape \(1, 785, 384\), the model wants \(1, 197, 384\)"):
        from_official_state_dict({**state, "pos_embed": torch.zeros(1, 785, 384)}, model)


def test_a_missing_file_says_where_to_put_it_and_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("VITCOURSE_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError) as error:
        load_official_dino(arch="S/8")
    message = str(error.value)
    assert str(tmp_path / "dino" / "dino_deitsmall8_pretrain.pth") in message
    assert "https://dl.fbaipublicfiles.com/dino/dino_deitsmall8_pretrain/dino_deitsmall8_pretrain.pth" in message
    assert "never downloads" in message
    with pytest.raises(ValueError, match="unknown DINO model 'B/16'"):
        load_official_dino(tmp_path / "x.pth", arch="B/16")
    assert dino.default_checkpoint_path("S/16") == tmp_path / "dino" / "dino_deitsmall16_pretrain.pth"


# -- the stand-in's object masks --------------------------------------------------------------------

def test_object_masks_leave_the_stand_in_images_byte_identical():
    import hashlib
    from vitcourse.data.synthetic import _chunk, _render_cifar, synthetic_object_masks, synthetic_split
    # the sha256 of test chunk 0 as it was before the masks could be asked for
    images, labels = _chunk("synthetic-cifar", "test", 0)
    assert hashlib.sha256(images.tobytes()).hexdigest() == (
        "1d00837fb37ac9672401e83d083523776122e2b1aaaae59e7116b17f38c3f0a7")
    # rendering with and without masks draws the same numbers
    with_masks = np.zeros((len(labels[:50]), 32, 32), np.float32)
    a = _render_cifar(np.random.default_rng(7), labels[:50])
    b = _render_cifar(np.random.default_rng(7), labels[:50], with_masks)
    assert np.array_equal(a, b)
    masks = synthetic_object_masks("test", 1000)
    assert masks.shape == (1000, 32, 32) and masks.dtype == np.float32 and not masks.flags.writeable
    assert masks.min() == 0.0 and masks.max() == 1.0
    assert 0.05 < masks.mean() < 0.4                         # objects cover a minority of the image
    # the masks belong to those images: object pixels differ from the image's border colour
    # far more than background pixels do
    x = synthetic_split("synthetic-cifar", "test", 1000)[0][:200].astype(np.float32)
    border = np.concatenate([x[:, 0], x[:, -1]], axis=1).mean(1)[:, None, None]   # (200, 1, 1, 3)
    distance = np.abs(x - border).sum(-1)
    obj, bg = masks[:200] > 0.99, masks[:200] < 0.01
    assert distance[obj].mean() > 2 * distance[bg].mean()
    with pytest.raises(ValueError, match="multiple of"):
        synthetic_object_masks("test", 10)


# -- the quick recipe and DINO's own task on frozen features ---------------------------------------

def test_quick_recipe_draws_maps_on_an_eight_by_eight_grid():
    recipe = quick_dino_recipe()
    assert recipe.model.image_size // recipe.model.patch_size == 8
    assert recipe.local_size % recipe.model.patch_size == 0
    steps = recipe.train_subset // recipe.batch_size * recipe.epochs
    assert steps == 1_408
    # the budget is spent on steps of a narrow model, not on a few steps of a wide one
    assert (recipe.model.dim, recipe.model.heads, recipe.batch_size) == (32, 2, 32)


def test_chapter7_supervised_model_learns_on_the_dino_grid():
    """The supervised ViT the chapter compares with DINO draws its maps on the same 8 × 8 grid,
    and its quick budget is 5 epochs of 5,000 images in batches of 64."""
    supervised, backbone = dino.quick_attention_vit_recipe(), dino.QUICK_DINO_VIT
    assert supervised.model.patch_size == backbone.patch_size == 4
    assert supervised.model.image_size == backbone.image_size == 32
    assert supervised.model.pool == "cls" and supervised.model.num_classes == 10
    assert supervised.train_subset // supervised.batch_size * supervised.epochs == 390
    assert dino.quick_attention_vit_recipe(epochs=2).epochs == 2       # overrides reach the recipe
    with pytest.raises(TypeError):
        dino.quick_attention_vit_recipe(no_such_knob=1)


def test_view_matching_finds_an_image_whose_views_are_the_image_itself():
    from vitcourse.dino import view_matching_accuracy
    torch.manual_seed(0)
    backbone = make_backbone(TINY)
    # one flat colour per image, no jitter: every crop and flip of an image is the image itself
    flat = np.broadcast_to(random_images(40, size=1, seed=3), (40, 16, 16, 3)).copy()
    same = tiny_recipe(jitter=0.0, grayscale_p=0.0)
    assert view_matching_accuracy(backbone, flat, same, batch_size=16) == 1.0
    # small crops of noise share little: far from every match, far above chance (1/40)
    hard = tiny_recipe(global_scale=(0.3, 0.3), jitter=0.4, grayscale_p=0.0)
    assert view_matching_accuracy(backbone, random_images(40, seed=4), hard) < 0.9
    assert backbone.training                                   # mode restored


def test_view_matches_are_per_image_and_pair_across_backbones():
    from vitcourse.dino import view_matches, view_matching_accuracy
    torch.manual_seed(0)
    first, second = make_backbone(TINY), make_backbone(TINY)
    images, hard = random_images(40, seed=4), tiny_recipe(global_scale=(0.3, 0.3), jitter=0.4)
    matched = view_matches(first, images, hard, batch_size=16)
    assert matched.dtype == torch.bool and matched.shape == (40,)
    assert float(matched.float().mean()) == view_matching_accuracy(first, images, hard, batch_size=16)
    # the same seed draws the same views: one backbone against itself pairs exactly
    assert torch.equal(view_matches(second, images, hard), view_matches(second, images, hard))


@pytest.mark.slow  # three runs of the command line, about 40 s
def test_command_line_trains_saves_and_resumes(tmp_path):
    """``python -m vitcourse.dino``: stopped after 3 of its 4 steps with a checkpoint, then run with
    ``--resume`` it goes on from step 3 and ends where an uninterrupted run ends; every summary
    carries the k-NN scores of the teacher and of the untrained network."""

    def run(*extra):
        command = [sys.executable, "-m", "vitcourse.dino", "--profile", "quick", "--epochs", "2",
                   "--train-subset", "64", "--batch-size", "32", "--device", "cpu", "--no-progress",
                   "--knn-bank", "500", "--knn-queries", "200",
                   "--checkpoint", str(tmp_path / "dino.pt"), "--summary", str(tmp_path / "s.json"), *extra]
        done = subprocess.run(command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads((tmp_path / "s.json").read_text())

    stopped = run("--max-steps", "3")
    assert stopped["steps"] == 3 and stopped["resumed_from_step"] == 0 and (tmp_path / "dino.pt").exists()
    assert set(stopped["knn_accuracy"]) == {"dino teacher", "same network before training"}
    assert stopped["knn_images"] == {"bank": 500, "queries": 200}
    resumed = run("--resume")
    (tmp_path / "dino.pt").unlink()
    whole = run()
    assert resumed["resumed_from_step"] == 3 and whole["resumed_from_step"] == 0
    assert resumed["steps"] == whole["steps"] == 4
    assert resumed["final_loss"] == whole["final_loss"]
    assert resumed["knn_accuracy"] == whole["knn_accuracy"]


def test_chapter7_claims_need_their_margins():
    from vitcourse.dino import (KNN_GAIN_POINTS, KNN_GAIN_SE, VIEW_MATCH_POINTS, VIEW_MATCH_SE,
                                attention_follows_objects, knn_gain_margin, margin_words,
                                view_matching_margin)
    assert knn_gain_margin(0.01) == pytest.approx(0.05)        # 5 points beat 3 × 1 point
    assert knn_gain_margin(0.02) == pytest.approx(0.06)        # 3 standard errors beat 5 points
    assert view_matching_margin(0.005) == pytest.approx(0.025)  # 2.5 points beat 3 × 0.5 point
    assert view_matching_margin(0.01) == pytest.approx(0.03)
    # the chapter's words come from the very constants the margins use
    assert margin_words(KNN_GAIN_POINTS, KNN_GAIN_SE, 0.01) == (
        "the bar of 5.0 points (the larger of 5.0 points and three paired standard errors, "
        "3 × 1.00 = 3.0)")
    assert margin_words(VIEW_MATCH_POINTS, VIEW_MATCH_SE, 0.01, ", a floor") == (
        "the bar of 3.0 points (the larger of 2.5 points, a floor, and three paired standard "
        "errors, 3 × 1.00 = 3.0)")   # the standard errors win: the bar is what the margin is
    assert margin_words(KNN_GAIN_POINTS, KNN_GAIN_SE, 0.0213).startswith("the bar of 6.4 points")
    assert margin_words(KNN_GAIN_POINTS, KNN_GAIN_SE, 0.0213).endswith("3 × 2.13 = 6.4)")
    assert attention_follows_objects(0.45, area=0.2, mean_map=0.3)
    assert not attention_follows_objects(0.39, area=0.2, mean_map=0.2)   # under twice the area
    assert not attention_follows_objects(0.45, area=0.2, mean_map=0.36)  # 9 points over its mean map


@pytest.mark.parametrize("given", ["0", "-3", "ten"])
def test_command_line_refuses_a_knn_size_that_is_no_count(given, capsys):
    from vitcourse.dino import _parse_args
    with pytest.raises(SystemExit):
        _parse_args(["--knn-bank", given])
    assert f"--knn-bank: wants a whole number of images, at least 1; got '{given}'" in capsys.readouterr().err


def test_a_checkpoint_missing_blocks_is_refused_with_its_keys_in_block_order():
    from vitcourse.dino import from_official_state_dict, make_backbone, official_dino_config
    from vitcourse.dino import random_official_state_dict

    model = make_backbone(official_dino_config("S/16"))
    state = {k: v for k, v in random_official_state_dict("S/16").items()
             if not any(k.startswith(f"blocks.{i}.") for i in range(2, 12))}
    with pytest.raises(ValueError) as caught:
        from_official_state_dict(state, model)
    message = str(caught.value)
    assert "missing 120 key(s): blocks.2.attn." in message   # blocks.2 first, not blocks.10
    assert "…. " not in message and message.endswith("… Check the file and the arch (S/16 or S/8)")
