"""Swin (vitcourse.swin): windows, the shift mask, relative positions, merging, the model, its costs."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vitcourse.cifar import quick_vit_recipe, random_cifar_like
from vitcourse.first_vit import count_parameters
from vitcourse.swin import (PatchMerging, SwinBlock, SwinConfig, SwinTrainer, SwinTransformer, WindowAttention,
                            attention_scaling, counted_macs, global_attention_macs, median_seconds, peak_tensor_bytes, quick_swin_recipe, relative_position_index,
                            shifted_window_mask, swin_config, window_attention_macs, window_partition,
                            window_reverse)
from vitcourse.vit import Attention

# ---------------------------------------------------------------------------------------------
# window_partition / window_reverse
# ---------------------------------------------------------------------------------------------


def test_partition_of_a_labelled_4x4_grid_by_hand():
    grid = torch.arange(16).view(1, 4, 4, 1)             # row-major labels 0..15
    windows = window_partition(grid, 2)[..., 0]
    assert windows.shape == (4, 2, 2)
    assert windows.tolist() == [[[0, 1], [4, 5]], [[2, 3], [6, 7]],
                                [[8, 9], [12, 13]], [[10, 11], [14, 15]]]


def test_partition_orders_windows_image_by_image():
    maps = torch.arange(2 * 4 * 6).view(2, 4, 6, 1)
    windows = window_partition(maps, 2)
    assert windows.shape == (2 * 6, 2, 2, 1)
    assert windows[6, 0, 0, 0] == maps[1, 0, 0, 0]         # image 1 starts at window 6
    # 2 rows × 3 columns of windows per image: window 4 is row 1, column 1
    assert windows[4, 1, 1, 0] == maps[0, 3, 3, 0]
    assert windows[3, 0, 1, 0] == maps[0, 2, 1, 0]


@pytest.mark.parametrize("shape, window", [((2, 8, 8, 5), 4), ((3, 6, 9, 2), 3), ((1, 7, 7, 4), 7), ((2, 4, 4, 3), 1)])
def test_reverse_undoes_partition(shape, window):
    x = torch.randn(shape)
    windows = window_partition(x, window)
    assert windows.shape == (shape[0] * (shape[1] // window) * (shape[2] // window), window, window, shape[3])
    assert torch.equal(window_reverse(windows, window, shape[1], shape[2]), x)


def test_partition_and_reverse_reject_bad_shapes_with_clear_messages():
    with pytest.raises(ValueError, match=r"window=3 must divide the map's height 8 and width 8"):
        window_partition(torch.zeros(1, 8, 8, 2), 3)
    with pytest.raises(ValueError, match=r"window=4 must divide the map's height 8 and width 6"):
        window_partition(torch.zeros(1, 8, 6, 2), 4)
    with pytest.raises(ValueError, match=r"channels-last map \(B, H, W, C\)"):
        window_partition(torch.zeros(8, 8, 2), 4)
    with pytest.raises(ValueError, match="not a whole number of 8×8 maps"):
        window_reverse(torch.zeros(5, 4, 4, 2), 4, 8, 8)
    with pytest.raises(ValueError, match=r"wants windows \(B·nW, 4, 4, C\)"):
        window_reverse(torch.zeros(4, 2, 2, 2), 4, 8, 8)


# ---------------------------------------------------------------------------------------------
# The shifted-window mask
# ---------------------------------------------------------------------------------------------


def brute_force_mask(height, width, window, shift):
    """Independently: a pair is blocked iff the roll wrapped one token round an edge but not the other.

    After torch.roll(x, -shift) the token at rolled (r, c) came from ((r+shift) % H, (c+shift) % W);
    it was wrapped in y iff r + shift ≥ H. Tokens in one window are true neighbours only if both
    or neither were wrapped, in y and in x.
    """
    n_win_x = width // window
    masks = []
    for wy in range(height // window):
        for wx in range(n_win_x):
            cells = [(wy * window + i, wx * window + j) for i in range(window) for j in range(window)]
            wrapped = [(r + shift >= height, c + shift >= width) for r, c in cells]
            masks.append([[wrapped[a] != wrapped[b] for b in range(len(cells))] for a in range(len(cells))])
    return torch.tensor(masks)


@pytest.mark.parametrize("height, width, window, shift", [(8, 8, 4, 2), (12, 8, 4, 1), (9, 9, 3, 1), (14, 14, 7, 3)])
def test_shift_mask_blocks_exactly_the_wrapped_pairs(height, width, window, shift):
    mask = shifted_window_mask(height, width, window, shift)
    assert mask.dtype == torch.bool
    assert mask.shape == ((height // window) * (width // window), window**2, window**2)
    assert torch.equal(mask, brute_force_mask(height, width, window, shift))


def test_shift_mask_on_8x8_window_4_shift_2_by_counting():
    mask = shifted_window_mask(8, 8, 4, 2)
    # window 0 (top-left) sees no wrapped token; windows 1 and 2 are split in two halves of 8
    # tokens (8·8·2 blocked pairs); window 3 in four quarters of 4 (16·12 blocked pairs).
    assert mask.sum(dim=(1, 2)).tolist() == [0, 128, 128, 192]
    assert not mask.diagonal(dim1=1, dim2=2).any()          # a token always sees itself


def test_zero_shift_blocks_nothing_and_bad_shifts_are_refused():
    assert not shifted_window_mask(8, 8, 4, 0).any()
    with pytest.raises(ValueError, match=r"shift must be in \[0, window=4\), got 4"):
        shifted_window_mask(8, 8, 4, 4)
    with pytest.raises(ValueError, match="window=3 must divide"):
        shifted_window_mask(8, 8, 3, 1)


def test_shifted_block_never_lets_information_wrap_round_the_map():
    torch.manual_seed(0)
    block = SwinBlock(dim=8, heads=2, window=4, shift=2).eval()
    x = torch.randn(1, 8, 8, 8, requires_grad=True)
    out, _ = block(x)
    (grad,) = torch.autograd.grad(out[0, 7, 7].sum(), x)
    reach = grad[0].abs().sum(-1) > 0                        # (8, 8): which inputs reach output (7, 7)
    # The shifted window of (7, 7) covers rows/cols 6, 7, 0, 1 after wrapping; the mask keeps 6 and 7 only.
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[6:, 6:] = True
    assert torch.equal(reach, expected)


# ---------------------------------------------------------------------------------------------
# Relative positions and window attention
# ---------------------------------------------------------------------------------------------


def test_relative_position_index_for_window_2_by_hand():
    # tokens (y, x): 0 = (0, 0), 1 = (0, 1), 2 = (1, 0), 3 = (1, 1); row = (dy + 1)·3 + (dx + 1)
    assert relative_position_index(2).tolist() == [[4, 3, 1, 0],
                                                   [5, 4, 2, 1],
                                                   [7, 6, 4, 3],
                                                   [8, 7, 5, 4]]


def test_relative_position_index_for_window_7_covers_the_table():
    index = relative_position_index(7)
    assert index.shape == (49, 49) and index.dtype == torch.long
    assert index.min() == 0 and index.max() == 13**2 - 1
    assert index.unique().numel() == 13**2                   # every offset occurs
    assert (index.diagonal() == 6 * 13 + 6).all()            # (dy, dx) = (0, 0) is the middle row
    with pytest.raises(ValueError, match="window must be a positive int"):
        relative_position_index(0)


def test_one_window_covering_the_map_is_global_attention():
    torch.manual_seed(0)
    dim, heads, side = 12, 3, 4
    global_attention = Attention(dim, heads).eval()
    window_attention = WindowAttention(dim, side, heads).eval()
    window_attention.load_state_dict(global_attention.state_dict(), strict=False)   # same qkv and proj
    with torch.no_grad():
        window_attention.relative_position_bias_table.zero_()                        # no bias
    x = torch.randn(2, side, side, dim)
    expected, _ = global_attention(x.view(2, side * side, dim))
    for return_weights in (False, True):
        got, _ = window_attention(window_partition(x, side).view(2, side * side, dim), return_weights=return_weights)
        assert torch.allclose(got, expected, atol=1e-6)


def test_position_bias_is_the_table_looked_up_by_offset():
    attention = WindowAttention(dim=4, window=2, heads=2)
    with torch.no_grad():
        attention.relative_position_bias_table.copy_(torch.arange(18.0).view(9, 2))
    bias = attention.position_bias()
    assert bias.shape == (2, 4, 4)
    assert torch.equal(bias[1], 2 * relative_position_index(2).float() + 1)   # head 1 reads column 1: 2·row + 1


def test_fused_and_explicit_paths_agree_with_a_mask_and_weights_are_softmaxes():
    torch.manual_seed(0)
    block = SwinBlock(dim=8, heads=2, window=4, shift=2).eval()
    x = torch.randn(3, 8, 8, 8)
    fused, none = block(x)
    explicit, weights = block(x, return_weights=True)
    assert none is None and torch.allclose(fused, explicit, atol=1e-5)
    assert weights.shape == (3 * 4, 2, 16, 16)
    assert torch.allclose(weights.sum(-1), torch.ones(12, 2, 16), atol=1e-6)
    blocked = shifted_window_mask(8, 8, 4, 2).repeat(3, 1, 1)[:, None].expand_as(weights)
    assert (weights[blocked] == 0).all()


def test_window_attention_rejects_unwindowed_input_and_bad_masks():
    attention = WindowAttention(dim=8, window=4, heads=2)
    with pytest.raises(ValueError, match="wants 16 tokens per window"):
        attention(torch.zeros(2, 64, 8))
    with pytest.raises(ValueError, match=r"mask must be \(nW, 16, 16\)"):
        attention(torch.zeros(6, 16, 8), mask=torch.zeros(4, 16, 16, dtype=torch.bool))
    with pytest.raises(ValueError, match="SwinBlock wants a channels-last map"):
        SwinBlock(dim=8, heads=2, window=4)(torch.zeros(1, 8, 4, 4))


def test_a_float_mask_is_added_to_the_scores():
    torch.manual_seed(0)
    attention = WindowAttention(dim=8, window=2, heads=2).eval()
    x = torch.randn(2, 4, 8)
    blocked = torch.tensor([[False, True, False, False]] * 4)[None]
    additive = torch.zeros(1, 4, 4).masked_fill(blocked, float("-inf"))
    assert torch.allclose(attention(x, blocked)[0], attention(x, additive)[0], atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Patch merging, the model, its size and costs
# ---------------------------------------------------------------------------------------------


def test_merging_halves_resolution_doubles_width_and_concatenates_in_the_official_order():
    assert PatchMerging(3)(torch.randn(2, 8, 6, 3)).shape == (2, 4, 3, 6)
    assert PatchMerging(3).reduction.weight.shape == (6, 12) and PatchMerging(3).reduction.bias is None
    seen = []
    merge = PatchMerging(1)
    merge.norm = torch.nn.Identity()
    merge.reduction.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    merge(torch.arange(16.0).view(1, 4, 4, 1))
    # block [[0, 1], [4, 5]] → top-left, bottom-left, top-right, bottom-right
    assert seen[-1][0, 0, 0].tolist() == [0, 4, 1, 5]
    assert seen[-1][0, 1, 1].tolist() == [10, 14, 11, 15]
    with pytest.raises(ValueError, match="needs an even height and width, got 5×4"):
        PatchMerging(1)(torch.zeros(1, 5, 4, 1))


def test_model_shapes_through_the_stages():
    torch.manual_seed(0)
    config = SwinConfig(image_size=32, patch_size=2, embed_dim=16, depths=(2, 2, 2), heads=(1, 2, 4), window=4)
    model = SwinTransformer(config).eval()
    assert config.resolutions == [16, 8, 4] and config.dims == [16, 32, 64]
    features, weights = model.forward_features(torch.rand(2, 3, 32, 32), return_weights=True)
    assert features.shape == (2, 4, 4, 64)
    assert [tuple(w[0].shape) for w in weights] == [(2 * 16, 1, 16, 16), (2 * 4, 2, 16, 16), (2, 4, 16, 16)]
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    # the last stage is one window: its "shifted" block does not shift
    last = model.stages[-1].blocks[1]
    x = torch.randn(1, 4, 4, 64)
    assert last.shift == 2 and torch.allclose(last(x)[0], _unshifted(last)(x)[0])


def _unshifted(block: SwinBlock) -> SwinBlock:
    twin = SwinBlock(block.dim, block.attn.heads, block.window, 0).eval()
    twin.load_state_dict(block.state_dict())
    return twin


@pytest.mark.parametrize("name, params", [("T", 28_288_354), ("S", 49_606_258), ("B", 87_768_224)])
def test_swin_parameter_counts_match_the_official_models(name, params):
    with torch.device("meta"):
        model = SwinTransformer(swin_config(name))
    assert count_parameters(model) == params


def test_swin_t_forward_is_4_5_g_multiply_adds():
    with torch.device("meta"):
        model = SwinTransformer(swin_config("T"))
        with FlopCounterMode(display=False) as counter:
            features, _ = model.forward_features(torch.empty(1, 3, 224, 224), return_weights=True)
            model.head(features.mean((1, 2)))
    assert round(counter.get_total_flops() / 2e9, 1) == 4.5


def test_config_errors_say_what_to_change():
    with pytest.raises(ValueError, match="stage 2's map is 2×2, not divisible by window=4"):
        SwinConfig(image_size=32, patch_size=8, depths=(2, 2), heads=(1, 2), window=4)
    with pytest.raises(ValueError, match="one entry per stage"):
        SwinConfig(depths=(2, 2), heads=(1, 2, 4))
    with pytest.raises(ValueError, match="width 96 must split evenly into 5 heads"):
        SwinConfig(heads=(5, 6, 12))
    with pytest.raises(ValueError, match="odd, so patch merging cannot halve it"):
        SwinConfig(image_size=36, patch_size=4, depths=(2, 2), heads=(1, 2), window=3)
    with pytest.raises(ValueError, match="unknown Swin 'L'"):
        swin_config("L")


@pytest.mark.parametrize("side, dim, window", [(8, 16, 4), (12, 24, 3)])
def test_the_papers_cost_formulas_match_the_flop_counter(side, dim, window):
    x = torch.randn(1, side, side, dim)
    global_attention = Attention(dim, heads=2)
    window_attention = WindowAttention(dim, window, heads=2)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        global_attention(x.view(1, side * side, dim), return_weights=True)
    assert counter.get_total_flops() == 2 * global_attention_macs(side, side, dim)     # 2 FLOPs per multiply-add
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        window_attention(window_partition(x, window).view(-1, window**2, dim), return_weights=True)
    assert counter.get_total_flops() == 2 * window_attention_macs(side, side, dim, window)


def test_median_seconds_skips_the_warm_up_and_takes_the_median(monkeypatch):
    import vitcourse.measure as measure

    # A fake clock: each call of fn advances it by the next duration in the list.
    durations = iter([5.0, 5.0] + [1.0, 9.0, 2.0, 3.0, 100.0])
    now = [0.0]
    monkeypatch.setattr(measure.time, "perf_counter", lambda: now[0])

    def fn():
        now[0] += next(durations)

    # two warm-up calls (5 s each, ignored); min_time 0 → one call per timed loop
    assert median_seconds(fn, repeats=5, warmup=2, min_time=0.0) == 3.0
    with pytest.raises(ValueError, match="at least 1"):
        median_seconds(fn, repeats=0)


def test_counted_macs_follow_the_papers_formulas_through_attention_scaling():
    x = torch.randn(1, 8, 8, 16)
    layer = Attention(16, heads=2)
    assert counted_macs(layer, x.view(1, 64, 16), return_weights=True) == global_attention_macs(8, 8, 16)
    table = attention_scaling([4, 8], dim=16, heads=2, window=4, repeats=1, progress=False)
    assert len(table) == 2 * 2 * 2 and (table["counted_macs"] == table["macs"]).all()
    assert (table["seconds"] > 0).all() and (table["peak_bytes"] > 0).all()


def test_peak_tensor_bytes_counts_what_is_alive_at_once():
    def two_then_two():
        a = torch.ones(1000, 1000)          # 4 MB
        b = a + 1                           # 8 MB alive
        del a
        c = b * 2                           # 8 MB again, never 12
        return c

    result, peak = peak_tensor_bytes(two_then_two)
    assert peak == 8_000_000 and result[0, 0] == 4
    _, peak = peak_tensor_bytes(lambda x: x.view(-1)[:10].mul_(2), torch.ones(100))
    assert peak == 0                        # views of an input and in-place ops allocate nothing


def test_swin_trainer_trains_checkpoints_and_refuses_a_vit_recipe(tmp_path):
    arrays = random_cifar_like(64, 32)
    recipe = quick_swin_recipe(epochs=1, batch_size=32, warmup_epochs=0.5, train_subset=64, test_subset=32)
    trainer = SwinTrainer(recipe, *arrays)
    assert isinstance(trainer.model, SwinTransformer)
    history = trainer.fit(progress=False)
    assert len(history) == 1 and trainer.step == 2
    trainer.save(tmp_path / "swin.pt")
    fresh = SwinTrainer(recipe, *arrays)
    fresh.load(tmp_path / "swin.pt")
    assert fresh.evaluate()[1] == trainer.evaluate()[1] and fresh.step == 2
    with pytest.raises(ValueError, match="wants recipe.model to be a SwinConfig, got ViTConfig"):
        SwinTrainer(quick_vit_recipe(), *arrays)


# ---------------------------------------------------------------------------------------------
# Swin against the ViT: counts, the comparison table, what it says
# ---------------------------------------------------------------------------------------------

def test_forward_macs_agree_with_the_vit_formula_and_the_swin_paper():
    from vitcourse import costs
    from vitcourse.cifar import CIFAR_VIT, QUICK_VIT
    from vitcourse.swin import forward_macs

    for config in (QUICK_VIT, CIFAR_VIT):
        assert forward_macs(config) == costs.forward_flops(config) // 2
    assert round(forward_macs(swin_config("T")) / 1e9, 1) == 4.5
    with pytest.raises(TypeError, match="wants a SwinConfig or a ViTConfig, got dict"):
        forward_macs({"dim": 64})


def test_compare_models_on_the_same_data_and_budget():
    from vitcourse.cifar import CifarTrainer, timed_fit
    from vitcourse.swin import compare_models, forward_macs

    arrays = random_cifar_like(64, 32)
    recipe = quick_swin_recipe(epochs=1, batch_size=32, warmup_epochs=0.5, train_subset=64, test_subset=32)
    swin = SwinTrainer(recipe, *arrays)
    vit = CifarTrainer(quick_vit_recipe(**{k: getattr(recipe, k) for k in
                                      ("epochs", "batch_size", "warmup_epochs", "train_subset", "test_subset")}),
                       *arrays)
    with pytest.raises(ValueError, match="'ViT' has not finished an epoch"):
        compare_models({"ViT": (vit, 1.0)})
    table = compare_models({"ViT": (vit, timed_fit(vit)), "Swin": (swin, timed_fit(swin))})
    assert list(table.columns) == ["parameters", "multiply-adds", "test accuracy", "test loss", "seconds"]
    assert table.loc["Swin", "parameters"] == count_parameters(swin.model)
    assert table.loc["ViT", "multiply-adds"] == forward_macs(vit.recipe.model)
    assert table.loc["Swin", "test accuracy"] == swin.evaluate()[1]
    assert (table["seconds"] > 0).all()


def _table(seconds_b, macs_b=100):
    """compare_models' table for a ViT and a Swin that differ in cost only."""
    import pandas as pd

    return pd.DataFrame({"parameters": [1000, 700], "multiply-adds": [100, macs_b],
                         "test accuracy": [0.6, 0.6], "test loss": [1.0, 1.0], "seconds": [10.0, seconds_b]},
                        index=["ViT", "Swin"])


def test_cost_findings_state_the_ratios_and_which_model_is_slower_per_multiply_add():
    from vitcourse.swin import cost_findings

    said = cost_findings(_table(14.0), "ViT", "Swin")
    assert said.startswith("Swin has 0.7× the parameters of ViT, does 1.0× its multiply-adds per "
                           "image, and its run took 1.4× its time.")
    assert "Per multiply-add Swin was the slower" in said
    said = cost_findings(_table(10.0), "ViT", "Swin")
    assert said == ("Swin has 0.7× the parameters of ViT, does 1.0× its multiply-adds per image, and its "
                    "run took 1.0× its time.")
    said = cost_findings(_table(10.0, macs_b=200), "ViT", "Swin")
    assert said.endswith("Per multiply-add ViT was the slower.")
    assert "accurac" not in said                 # accuracy is compared paired, in vitcourse.stats
