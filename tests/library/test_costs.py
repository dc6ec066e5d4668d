"""Closed-form costs (vitcourse.costs) against hand values, the built model, and torch's FLOP counter."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vitcourse.costs import (attention_entries_per_head, attention_memory_bytes, forward_flops, num_patches,
                             num_tokens, param_count, training_flops, variant_table)
from vitcourse.first_vit import count_parameters
from vitcourse.vit import ViTConfig, VisionTransformer, vit_config


def built(config: ViTConfig) -> VisionTransformer:
    with torch.device("meta"):          # shapes only: even ViT-L costs no memory
        return VisionTransformer(config)


def test_vit_b16_has_86_567_656_parameters():
    config = vit_config("B/16")
    assert param_count(config) == 86_567_656
    assert count_parameters(built(config)) == 86_567_656


@pytest.mark.parametrize("config", [
    ViTConfig(),
    ViTConfig(pool="mean"),
    ViTConfig(cls_position=False),
    ViTConfig(qkv_bias=False, mlp_ratio=2.5, depth=3, dim=96, heads=3, num_classes=100),
    ViTConfig(image_size=64, patch_size=8, in_chans=1),
], ids=["cifar", "mean", "cls-no-position", "no-qkv-bias", "grey"])
def test_formula_matches_the_built_model(config):
    assert param_count(config) == count_parameters(built(config))


def test_variant_table_counts():
    table = variant_table()
    assert table["params"].to_dict() == {"ViT-Ti/16": 5_717_416, "ViT-S/16": 22_050_664,
                                         "ViT-B/16": 86_567_656, "ViT-L/16": 304_326_632}
    assert (table["tokens"] == 197).all()


def test_tokens_and_attention_entries():
    assert num_patches(224, 16) == 196
    assert num_patches((224, 320), 16) == 14 * 20
    assert num_tokens(384, 16, cls_token=False) == 576
    assert attention_entries_per_head(576) == 331_776
    assert num_patches(1024, 16) == 4_096
    assert attention_entries_per_head(4_096) == 16_777_216
    assert num_tokens(32, 4) == 65


def test_attention_memory_bytes():
    # ViT-B at 224: 2 images × 12 layers × 12 heads × 197² entries × 2 bytes (bf16)
    assert attention_memory_bytes(197, 12, batch=2, layers=12) == 2 * 12 * 12 * 197 * 197 * 2
    assert attention_memory_bytes(4_096, 1, dtype="float32") == 16_777_216 * 4


@pytest.mark.parametrize("config", [ViTConfig(), ViTConfig(pool="mean"), vit_config("S/16")], ids=["cifar", "mean", "S/16"])
def test_forward_flops_match_torch_flop_counter(config):
    model = built(config)
    images = torch.empty(2, 3, config.image_size, config.image_size, device="meta")
    with FlopCounterMode(display=False) as counter:
        tokens, _ = model.forward_features(images, return_weights=True)    # explicit matmuls: all counted
        model.head(model.pool(tokens))
    assert counter.get_total_flops() == 2 * forward_flops(config)
    assert training_flops(config) == 3 * forward_flops(config)


def test_vit_b16_forward_flops_by_hand():
    patch = 2 * 196 * 768 * 768
    per_block = 2 * 197 * 768 * (3 * 768 + 768 + 2 * 3072) + 4 * 197 * 197 * 768
    assert forward_flops(vit_config("B/16")) == patch + 12 * per_block + 2 * 768 * 1000


@pytest.mark.parametrize("call, message", [
    (lambda: num_patches(100, 16), "patch 16×16 does not tile a 100×100 image"),
    (lambda: num_patches(0, 16), "image_size must be a positive int"),
    (lambda: attention_entries_per_head(-1), "tokens must be a positive int"),
    (lambda: attention_memory_bytes(10, 1, dtype="int8"), "dtype must be one of"),
])
def test_bad_input_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
