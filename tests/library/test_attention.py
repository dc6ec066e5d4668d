"""vitcourse.attention against pencil numbers and against PyTorch's own attention."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitcourse.attention import (
    attention_pairs,
    attention_scores,
    merge_heads,
    multi_head_self_attention,
    patch_token_count,
    scaled_dot_product_attention,
    softmax,
    split_heads,
)

# Chapter 1's two strips, width 4.
QUERIES = np.array([[2.0, 0, 1, 0], [0, 0, 2, 0]])
KEYS = np.array([[1.0, 0, 0, 0], [3, 0, 2, 0]])
VALUES = np.array([[2.0, 0, 0, 1], [0, 3, 1, 0]])


def test_score_grid_by_hand():
    np.testing.assert_array_equal(QUERIES @ KEYS.T, [[2, 8], [0, 4]])
    np.testing.assert_array_equal(attention_scores(QUERIES, KEYS), [[1, 4], [0, 2]])  # ÷ √4


def test_worked_example_weights_and_outputs():
    outputs, weights = scaled_dot_product_attention(QUERIES, KEYS, VALUES)
    np.testing.assert_allclose(weights, [[0.047, 0.953], [0.119, 0.881]], atol=5e-4)
    # e^1/(e^1+e^4) exactly:
    assert weights[0, 0] == pytest.approx(np.e / (np.e + np.e**4))
    np.testing.assert_allclose(outputs, [[0.095, 2.858, 0.953, 0.047], [0.238, 2.642, 0.881, 0.119]], atol=5e-4)
    # A pencil that rounds the weights to 3 decimals first gets 2.859 and 2.643 instead.
    pencil = weights.round(3) @ VALUES
    np.testing.assert_allclose(pencil, [[0.094, 2.859, 0.953, 0.047], [0.238, 2.643, 0.881, 0.119]], atol=1e-9)


def test_softmax_rows_sum_to_one_on_any_axis():
    x = np.random.default_rng(0).normal(size=(2, 3, 5))
    for axis in (0, 1, 2, -1):
        np.testing.assert_allclose(softmax(x, axis=axis).sum(axis=axis), 1.0)


@pytest.mark.parametrize("logits", [[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0], [1e308, 0.0]])
def test_softmax_stable_for_huge_logits(logits):
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no inf, no 0/0
        p = softmax(np.array(logits))
    expected = torch.softmax(torch.tensor(logits, dtype=torch.float64), dim=-1).numpy()
    np.testing.assert_allclose(p, expected, atol=1e-12)


def test_softmax_keeps_float32_and_promotes_ints():
    assert softmax(np.ones(3, np.float32)).dtype == np.float32
    p = softmax(np.array([1, 2, 3]))
    assert p.dtype == np.float64
    np.testing.assert_allclose(p, np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())


@pytest.mark.parametrize("lead", [(), (3,), (2, 4)])
def test_equals_torch_scaled_dot_product_attention(lead):
    rng = np.random.default_rng(1)
    q, k, v = rng.normal(size=lead + (6, 8)), rng.normal(size=lead + (9, 8)), rng.normal(size=lead + (9, 5))
    outputs, weights = scaled_dot_product_attention(q, k, v)
    expected = F.scaled_dot_product_attention(*(torch.from_numpy(a) for a in (q, k, v)))
    assert outputs.shape == lead + (6, 5) and weights.shape == lead + (6, 9)
    np.testing.assert_allclose(outputs, expected.numpy(), atol=1e-12)
    np.testing.assert_allclose(weights.sum(-1), 1.0)


def test_mask_matches_torch_boolean_mask():
    rng = np.random.default_rng(2)
    q, k, v = (rng.normal(size=(2, 5, 4)) for _ in range(3))
    causal = np.tril(np.ones((5, 5), dtype=bool))
    outputs, weights = scaled_dot_product_attention(q, k, v, mask=causal)
    expected = F.scaled_dot_product_attention(*(torch.from_numpy(a) for a in (q, k, v)),
                                              attn_mask=torch.from_numpy(causal))
    np.testing.assert_allclose(outputs, expected.numpy(), atol=1e-12)
    assert (weights[:, ~causal] == 0).all()


def test_mask_blocking_a_whole_row_is_an_error():
    mask = np.array([[True, False], [False, False]])
    with pytest.raises(ValueError, match="blocks every key"):
        scaled_dot_product_attention(QUERIES, KEYS, VALUES, mask=mask)


def test_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"same width.*\(2, 3\)"):
        scaled_dot_product_attention(QUERIES, KEYS[:, :3], VALUES)
    with pytest.raises(ValueError, match=r"one row per token.*\(3, 4\)"):
        scaled_dot_product_attention(QUERIES, KEYS, np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"at least 2 axes.*queries\[None\]"):
        scaled_dot_product_attention(QUERIES[0], KEYS, VALUES)


def test_split_and_merge_heads_round_trip():
    x = np.arange(2 * 5 * 12).reshape(2, 5, 12)
    heads = split_heads(x, 4)
    assert heads.shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(heads[1, 2, 3], x[1, 3, 6:9])  # head 2 owns slots 6..8
    np.testing.assert_array_equal(merge_heads(heads), x)
    with pytest.raises(ValueError, match="width 12 cannot be split into n_heads=5"):
        split_heads(x, 5)


def test_equals_torch_multihead_attention_4_heads_of_16():
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(embed_dim=64, num_heads=4, batch_first=True).double().eval()
    x = torch.randn(3, 49, 64, dtype=torch.float64)
    with torch.no_grad():
        expected, expected_weights = mha(x, x, x, average_attn_weights=False)
    params = [p.detach().numpy() for p in (mha.in_proj_weight, mha.in_proj_bias,
                                           mha.out_proj.weight, mha.out_proj.bias)]
    outputs, weights = multi_head_self_attention(x.numpy(), *params, n_heads=4)
    assert weights.shape == (3, 4, 49, 49)
    np.testing.assert_allclose(outputs, expected.numpy(), atol=1e-10)
    np.testing.assert_allclose(weights, expected_weights.numpy(), atol=1e-12)


def test_attention_is_permutation_equivariant():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 8))
    order = rng.permutation(6)
    out, _ = scaled_dot_product_attention(x, x, x)
    shuffled_out, _ = scaled_dot_product_attention(x[order], x[order], x[order])
    np.testing.assert_allclose(shuffled_out, out[order], atol=1e-12)


def test_cost_helpers():
    assert patch_token_count(28, 28) == 784
    assert attention_pairs(patch_token_count(28, 28)) == 614_656
    assert patch_token_count(28, 28, patch_size=4) == 49
    assert attention_pairs(49) == 2_401
    assert patch_token_count(224, 224, 16) == 196
    with pytest.raises(ValueError, match="patch_size=5 must be a positive divisor of both sides of a 28×28"):
        patch_token_count(28, 28, 5)
    with pytest.raises(ValueError, match="n_tokens must be ≥ 0, got -1"):
        attention_pairs(-1)
