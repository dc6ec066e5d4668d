"""Attention maps (vitcourse.attention_maps): CLS maps, rollout, the 60 %-mass mask, errors."""

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from torch import nn

from vitcourse.attention_maps import (attention_rollout, cls_attention_map, cls_attention_maps, cls_rollout_map,
                                      keep_top_mass, object_share, overlay, patch_shares, show_maps,
                                      upsample_map)
from vitcourse.vit import ViTConfig, VisionTransformer

SMALL = ViTConfig(image_size=16, patch_size=4, dim=32, depth=2, heads=4, num_classes=5)


def small(**changes) -> VisionTransformer:
    torch.manual_seed(0)
    return VisionTransformer(ViTConfig(**{**SMALL.__dict__, **changes})).eval()


# -- attention rollout ------------------------------------------------------------------------------

def test_rollout_matches_a_two_layer_example_worked_by_hand():
    # Two heads whose mean is A1 = [[1, 0], [.5, .5]] and A2 = [[.5, .5], [0, 1]].
    layer1 = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]])
    layer2 = torch.tensor([[[0.0, 1.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])
    # With the residual: (A + I)/2 → [[1, 0], [.25, .75]] and [[.75, .25], [0, 1]];
    # rollout = second @ first = [[.75 + .0625, .1875], [.25, .75]].
    expected = torch.tensor([[0.8125, 0.1875], [0.25, 0.75]])
    assert torch.allclose(attention_rollout([layer1, layer2]), expected)
    batched = attention_rollout([layer1[None].repeat(3, 1, 1, 1), layer2[None].repeat(3, 1, 1, 1)])
    assert batched.shape == (3, 2, 2) and torch.allclose(batched, expected.expand(3, 2, 2))
    # Without the residual it is the plain product of the head means, later layer on the left.
    plain = torch.tensor([[0.5, 0.5], [0.0, 1.0]]) @ torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    assert torch.allclose(attention_rollout([layer1, layer2], residual=False), plain)


def test_rollout_head_fusion_max_and_rows_sum_to_one():
    layer1 = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]])
    # max over heads: [[1, 0], [1, 1]] (+ I, renormalised) → [[1, 0], [1/3, 2/3]]
    assert torch.allclose(attention_rollout([layer1], head_fusion="max"), torch.tensor([[1.0, 0.0], [1 / 3, 2 / 3]]))
    weights = small().attention_maps(torch.rand(2, 3, 16, 16))
    rollout = attention_rollout(weights)
    assert rollout.shape == (2, 17, 17)
    assert torch.allclose(rollout.sum(-1), torch.ones(2, 17), atol=1e-5)


def test_rollout_rejects_bad_input():
    with pytest.raises(ValueError, match="head_fusion"):
        attention_rollout([torch.ones(2, 3, 3) / 3], head_fusion="median")
    with pytest.raises(ValueError, match="at least one layer"):
        attention_rollout([])
    with pytest.raises(ValueError, match="layer 1 has weights of shape"):
        attention_rollout([torch.ones(2, 3, 3) / 3, torch.ones(2, 4, 4) / 4])
    with pytest.raises(ValueError, match=r"\(B, heads, T, T\)"):
        attention_rollout([torch.ones(3, 4)])


# -- the 60 %-mass display ------------------------------------------------------------------------

def test_keep_top_mass_on_a_hand_example():
    attention = torch.tensor([[0.1, 0.4], [0.3, 0.2]])
    # Largest first: 0.4 (total 0.4 < 0.6, keep going), 0.3 (0.7 ≥ 0.6, stop).
    assert keep_top_mass(attention, 0.6).tolist() == [[False, True], [True, False]]
    assert keep_top_mass(attention, 0.4).tolist() == [[False, True], [False, False]]
    assert keep_top_mass(attention, 0.75).tolist() == [[False, True], [True, True]]
    assert keep_top_mass(attention, 1.0).all()
    # Only shares matter: a map summing to 0.5 (CLS→patch rows sum below 1) keeps the same patches.
    assert torch.equal(keep_top_mass(attention / 2, 0.6), keep_top_mass(attention, 0.6))


def test_keep_top_mass_works_per_head():
    maps = torch.stack([torch.tensor([[0.7, 0.1], [0.1, 0.1]]), torch.tensor([[0.25, 0.25], [0.25, 0.25]])])
    kept = keep_top_mass(maps, 0.6)
    assert kept.shape == (2, 2, 2)
    assert kept[0].sum() == 1 and kept[0, 0, 0]          # one patch holds 70 %
    assert kept[1].sum() == 3                             # uniform: 3 of 4 patches to pass 60 %


def test_keep_top_mass_rejects_bad_input():
    with pytest.raises(ValueError, match=r"mass must be in \(0, 1\]"):
        keep_top_mass(torch.ones(2, 2), 0.0)
    with pytest.raises(ValueError, match="non-negative"):
        keep_top_mass(torch.tensor([[0.5, -0.1], [0.3, 0.3]]))
    with pytest.raises(ValueError, match=r"\(\.\.\., h, w\)"):
        keep_top_mass(torch.ones(4))


# -- CLS attention maps ---------------------------------------------------------------------------

def test_cls_attention_map_is_the_cls_row_of_the_last_block():
    model = small()
    image = torch.rand(3, 16, 16)
    maps = cls_attention_map(model, image)
    assert maps.shape == (4, 4, 4)                               # heads, H/P, W/P
    last = model.attention_maps(image[None])[-1][0]              # (heads, 17, 17)
    assert torch.allclose(maps.flatten(1), last[:, 0, 1:])
    # The softmax row covers the CLS token too: the patch part plus CLS→CLS is 1.
    assert torch.allclose(maps.sum((1, 2)) + last[:, 0, 0], torch.ones(4), atol=1e-5)
    assert (maps.sum((1, 2)) < 1).all()
    assert torch.equal(cls_attention_map(model, image[None]), maps)      # (1, 3, H, W) accepted


def test_uniform_attention_gives_one_over_t_everywhere():
    model = small()
    for block in model.blocks:                     # every query·key score 0 → softmax uniform over 17 tokens
        nn.init.zeros_(block.attn.qkv.weight)
        nn.init.zeros_(block.attn.qkv.bias)
    maps = cls_attention_map(model, torch.rand(3, 16, 16))
    assert torch.allclose(maps, torch.full((4, 4, 4), 1 / 17))
    # Rollout: each layer is (U + I)/2 with U uniform; after two, the CLS row is ¼·e_CLS + ¾·U.
    assert torch.allclose(cls_rollout_map(model, torch.rand(3, 16, 16)), torch.full((4, 4), 0.75 / 17))


@torch.no_grad()
def test_the_map_points_at_the_one_bright_patch_in_grid_order():
    # One block, one head, D = 4. The patch embedding measures brightness in feature 0; after
    # LayerNorm a bright patch becomes u = LN([1, 0, 0, 0]), a black one 0. Every query is 20·u
    # (bias only) and the keys are the normalised tokens, so the CLS token looks at the bright patch.
    model = VisionTransformer(ViTConfig(image_size=16, patch_size=4, dim=4, depth=1, heads=1)).eval()
    for p in model.parameters():
        p.zero_()
    for norm in (model.blocks[0].norm1, model.blocks[0].norm2, model.norm):
        norm.weight.fill_(1)
    model.patch_embed.proj.weight[0] = 1.0
    model.cls_token[0, 0, 1] = 1.0
    u = torch.nn.functional.layer_norm(torch.tensor([1.0, 0, 0, 0]), (4,), eps=1e-6)
    qkv = model.blocks[0].attn.qkv
    qkv.bias[:4] = 20 * u
    qkv.weight[4:8] = torch.eye(4)
    image = torch.zeros(3, 16, 16)
    image[:, 4:8, 8:12] = 1.0                              # patch row 1, column 2
    maps = cls_attention_map(model, image)
    assert maps.shape == (1, 4, 4)
    assert divmod(int(maps[0].argmax()), 4) == (1, 2)
    assert maps[0, 1, 2] > 0.99


def test_cls_attention_map_errors_say_what_to_do():
    with pytest.raises(ValueError, match="pool='mean'.*no CLS token"):
        cls_attention_map(small(pool="mean"), torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match=r"channels-last\? use image.permute\(2, 0, 1\)"):
        cls_attention_map(small(), torch.rand(16, 16, 3))
    with pytest.raises(ValueError, match="one image at a time"):
        cls_attention_map(small(), torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"\(3, 16, 16\).*got \(3, 32, 32\)"):
        cls_attention_map(small(), torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="float image"):
        cls_attention_map(small(), torch.zeros(3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="VisionTransformer"):
        cls_attention_map(nn.Linear(3, 3), torch.rand(3, 16, 16))


def test_cls_attention_map_leaves_a_training_model_in_training_mode():
    model = small().train()
    cls_attention_map(model, torch.rand(3, 16, 16))
    assert model.training


# -- drawing -----------------------------------------------------------------------------------------

def test_upsample_map_repeats_each_patch_and_drawing_runs():
    grid = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    big = upsample_map(grid, 4)
    assert big.shape == (4, 4) and torch.equal(big[:2, :2], torch.ones(2, 2)) and big[3, 3] == 4
    assert upsample_map(torch.rand(3, 2, 2), (6, 8)).shape == (3, 6, 8)
    maps = torch.rand(2, 4, 4)
    fig = show_maps(torch.rand(3, 16, 16), maps, ["a", "b"], masks=keep_top_mass(maps))
    assert len(fig.axes) == 7                              # 2 × 3 panels and one colour bar
    scales = {im.get_clim() for ax in fig.axes[1:3] for im in ax.get_images()[1:]}
    assert scales == {(0.0, float(maps.max()))}            # one shared scale for every head
    import matplotlib.pyplot as plt
    fig2, ax = plt.subplots()
    overlay(ax, torch.rand(16, 16, 3), maps[0], title="x")
    plt.close("all")


# -- batches of maps, and how much of a map lies on the object ---------------------------------------

def test_cls_attention_maps_is_cls_attention_map_image_by_image():
    model = small().train()
    images = torch.rand(5, 3, 16, 16)
    maps = cls_attention_maps(model, images, batch_size=2)
    assert maps.shape == (5, 4, 4, 4)                                # B, heads, H/P, W/P
    for i in range(5):
        assert torch.allclose(maps[i], cls_attention_map(model, images[i]), atol=1e-6)
    assert model.training                                            # mode restored
    with pytest.raises(ValueError, match="B, C, H, W"):
        cls_attention_maps(model, images[0])


def test_patch_shares_are_the_head_mean_of_the_cls_row_renormalised_over_the_patches():
    model = small()
    images = torch.rand(3, 3, 16, 16)
    shares = patch_shares(model, images)
    assert shares.shape == (3, 4, 4)
    weights = model.eval().attention_maps(images)[-1]               # (B, heads, T, T), T = 1 + 16
    row = weights[:, :, 0, 1:].mean(1)                              # the CLS row, heads averaged
    expected = (row / row.sum(-1, keepdim=True)).reshape(3, 4, 4)
    assert torch.allclose(shares, expected, atol=1e-6)
    assert torch.allclose(shares.sum((1, 2)), torch.ones(3))


def test_object_share_by_hand():
    mask = torch.zeros(8, 8)
    mask[:4, :4] = 1.0                                 # the object: the top-left quarter of the image
    # a flat map scores the object's share of the area
    assert float(object_share(torch.ones(2, 2), mask)) == pytest.approx(0.25)
    # all the mass on the top-left patch: 1; on the top-right one: 0
    assert float(object_share(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), mask)) == pytest.approx(1.0)
    assert float(object_share(torch.tensor([[0.0, 1.0], [0.0, 0.0]]), mask)) == pytest.approx(0.0)
    # a patch half covered counts half; the map's own scale does not matter
    half = torch.zeros(8, 8)
    half[:2, :4] = 1.0
    assert float(object_share(torch.tensor([[3.0, 0.0], [0.0, 1.0]]), half)) == pytest.approx(0.75 * 0.5)
    # batches: one share per map
    shares = object_share(torch.stack([torch.ones(2, 2), torch.eye(2)]), torch.stack([mask, mask]))
    assert torch.allclose(shares, torch.tensor([0.25, 0.5]))
    with pytest.raises(ValueError, match="whole number of patches"):
        object_share(torch.ones(3, 3), mask)
    with pytest.raises(ValueError, match="non-negative"):
        object_share(-torch.ones(2, 2), mask)
