"""The paper's ViT (vitcourse.vit): shapes, CLS vs mean pooling, attention paths, drop-path, errors."""

import numpy as np
import pytest
import torch

from vitcourse.attention import multi_head_self_attention
from vitcourse.first_vit import count_parameters
from vitcourse.patches import extract_patches
from vitcourse.vit import (Attention, Block, PatchEmbed, ViTConfig, VisionTransformer, drop_path, vit_config)

SMALL = ViTConfig(image_size=16, patch_size=4, dim=32, depth=2, heads=4, num_classes=5)


def small(**changes) -> VisionTransformer:
    torch.manual_seed(0)
    return VisionTransformer(ViTConfig(**{**SMALL.__dict__, **changes})).eval()


@pytest.mark.parametrize("pool, tokens", [("cls", 17), ("mean", 16)])
def test_shapes_of_logits_tokens_and_attention_maps(pool, tokens):
    model = small(pool=pool)
    images = torch.rand(3, 3, 16, 16)
    assert model(images).shape == (3, 5)
    features, _ = model.forward_features(images)
    assert features.shape == (3, tokens, 32)
    maps = model.attention_maps(images)
    assert len(maps) == 2 and all(m.shape == (3, 4, tokens, tokens) for m in maps)
    assert torch.allclose(maps[0].sum(-1), torch.ones(3, 4, tokens), atol=1e-6)


def test_cls_pool_reads_row_zero_and_mean_pool_averages_the_patches():
    tokens = torch.randn(2, 17, 32)
    assert torch.equal(small(pool="cls").pool(tokens), tokens[:, 0])
    patches_only = tokens[:, 1:]
    assert torch.allclose(small(pool="mean").pool(patches_only), patches_only.mean(1))


def test_mean_pooling_has_no_cls_token_and_one_position_row_per_patch():
    model = small(pool="mean")
    assert model.cls_token is None
    assert model.pos_embed.shape == (1, 16, 32)
    assert small(pool="cls").pos_embed.shape == (1, 17, 32)
    assert count_parameters(small(pool="cls")) - count_parameters(model) == 2 * 32   # CLS vector + its position


def test_cls_without_a_position_enters_the_blocks_unchanged():
    model = small(cls_position=False)
    assert model.pos_embed.shape == (1, 16, 32)
    tokens = model.embed(torch.rand(2, 3, 16, 16))
    assert torch.equal(tokens[:, 0], model.cls_token[0].expand(2, -1))


def test_a_cls_position_is_absorbed_by_the_cls_vector():
    # cls + pos[0] is one learned vector: the model without a CLS position computes the same function.
    with_position, without = small(cls_position=True), small(cls_position=False)
    state = dict(with_position.state_dict())
    state["cls_token"] = state["cls_token"] + state["pos_embed"][:, :1]
    state["pos_embed"] = state["pos_embed"][:, 1:]
    without.load_state_dict(state)
    images = torch.rand(4, 3, 16, 16)
    assert torch.allclose(with_position(images), without(images), atol=1e-6)


def test_sdpa_path_equals_the_explicit_softmax_path():
    torch.manual_seed(1)
    attention = Attention(32, 4).eval()
    x = torch.randn(2, 9, 32)
    fused, none = attention(x)
    explicit, weights = attention(x, return_weights=True)
    assert none is None
    assert torch.allclose(fused, explicit, atol=1e-6)
    assert weights.shape == (2, 4, 9, 9) and (weights >= 0).all()
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 9), atol=1e-6)
    model = small()
    images = torch.rand(2, 3, 16, 16)
    features, _ = model.forward_features(images)
    assert torch.allclose(features, model.forward_features(images, return_weights=True)[0], atol=1e-5)


def test_attention_equals_the_numpy_reference_of_chapter_1():
    torch.manual_seed(2)
    attention = Attention(32, 4).eval()
    x = torch.randn(9, 32, dtype=torch.float64)
    attention.double()
    with torch.no_grad():
        out, weights = attention(x[None], return_weights=True)
    expected, expected_weights = multi_head_self_attention(
        x.numpy(), attention.qkv.weight.detach().numpy(), attention.qkv.bias.detach().numpy(),
        attention.proj.weight.detach().numpy(), attention.proj.bias.detach().numpy(), 4)
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-10)
    np.testing.assert_allclose(weights[0].numpy(), expected_weights, atol=1e-12)


def test_patch_embed_is_cut_flatten_project():
    torch.manual_seed(3)
    embed = PatchEmbed(16, 4, 3, 8)
    images = torch.rand(2, 3, 16, 16)
    patches = extract_patches(images.permute(0, 2, 3, 1), 4)                    # (2, 16, 48), channels innermost
    weight = embed.proj.weight.permute(0, 2, 3, 1).reshape(8, 48)               # (D, P·P·C) in the same order
    assert torch.allclose(embed(images), patches @ weight.T + embed.proj.bias, atol=1e-5)


def test_block_is_pre_norm_with_two_residual_adds():
    torch.manual_seed(4)
    block = Block(32, 4, 64).eval()
    x = torch.randn(2, 5, 32)
    after_attention = x + block.attn(block.norm1(x))[0]
    expected = after_attention + block.mlp(block.norm2(after_attention))
    assert torch.allclose(block(x)[0], expected, atol=1e-6)


def test_drop_path_zeroes_whole_samples_in_training_and_nothing_in_eval():
    x = torch.ones(1000, 3, 4)
    torch.manual_seed(5)
    out = drop_path(x, 0.25, training=True)
    per_sample = out.flatten(1)
    dropped = (per_sample == 0).all(1)
    kept = torch.isclose(per_sample, torch.tensor(4 / 3)).all(1)             # kept samples scaled by 1/(1-p)
    assert (dropped ^ kept).all()                                              # whole samples, never parts
    assert 0.18 < dropped.float().mean() < 0.32
    assert drop_path(x, 0.25, training=False) is x


def test_eval_mode_turns_dropout_and_drop_path_off():
    noisy = small(drop_path=0.5, dropout=0.3, attn_dropout=0.3)
    clean = small()
    clean.load_state_dict(noisy.state_dict())
    images = torch.rand(2, 3, 16, 16)
    assert torch.equal(noisy.eval()(images), clean(images))
    noisy.train()
    assert not torch.allclose(noisy(images), clean(images))


def test_drop_path_rate_rises_linearly_over_the_blocks():
    model = VisionTransformer(ViTConfig(**{**SMALL.__dict__, "depth": 5, "drop_path": 0.2}))
    assert [round(b.drop_path.p, 6) for b in model.blocks] == [0.0, 0.05, 0.1, 0.15, 0.2]


def test_named_configs():
    config = vit_config("B/16")
    assert (config.dim, config.depth, config.heads, config.num_tokens) == (768, 12, 12, 197)
    assert vit_config("L/16", image_size=384).num_patches == 576


@pytest.mark.parametrize("changes, message", [
    (dict(patch_size=5), "patch_size=5 must divide image_size=16"),
    (dict(dim=30), "dim=30 must split evenly into heads=4"),
    (dict(pool="max"), "pool must be one of"),
    (dict(drop_path=1.0), r"drop_path must be in \[0, 1\)"),
    (dict(depth=0), "depth must be a positive int"),
])
def test_bad_configs_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        ViTConfig(**{**SMALL.__dict__, **changes})


def test_bad_names_and_inputs_are_refused():
    with pytest.raises(ValueError, match="unknown ViT 'X/16'"):
        vit_config("X/16")
    with pytest.raises(ValueError, match=r"channels-last\? use images.permute\(0, 3, 1, 2\)"):
        small()(torch.rand(2, 16, 16, 3))
    with pytest.raises(ValueError, match=r"got \(2, 3, 32, 32\)"):
        small()(torch.rand(2, 3, 32, 32))


def test_other_image_sizes_need_any_size_and_get_resized_positions():
    torch.manual_seed(0)
    model = VisionTransformer(ViTConfig(image_size=16, patch_size=4, dim=32, depth=1, heads=2)).eval()
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 16\)"):
        model.forward_features(torch.rand(2, 3, 8, 12))
    tokens, _ = model.forward_features(torch.rand(2, 3, 8, 12), any_size=True)
    assert tokens.shape == (2, 1 + 2 * 3, 32)                      # CLS + a 2 × 3 grid of patches
    cls_row, rows = model.position_rows((4, 4))                    # the model's own grid: the table itself
    assert torch.equal(cls_row, model.pos_embed[:, :1]) and torch.equal(rows, model.pos_embed[:, 1:])
    assert model.position_rows((2, 3))[1].shape == (1, 6, 32)
    with pytest.raises(ValueError, match="multiples of the patch size 4"):
        model.forward_features(torch.rand(1, 3, 10, 12), any_size=True)
