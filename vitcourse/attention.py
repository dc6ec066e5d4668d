"""Scaled dot-product attention in NumPy, built from a numerically stable softmax.

Shapes (any leading axes ``...`` broadcast: batch, heads, or none):

* queries ``(..., Lq, Dk)``, keys ``(..., Lk, Dk)``, values ``(..., Lk, Dv)``
* scores = queries · keysᵀ / √Dk        ``(..., Lq, Lk)``
* weights = softmax(scores) by row       ``(..., Lq, Lk)``, each row sums to 1
* outputs = weights · values             ``(..., Lq, Dv)``

Multi-head attention is the same function run on ``H`` slices of width ``D/H``:
:func:`split_heads` and :func:`merge_heads` move between ``(..., L, H·Dh)`` and
``(..., H, L, Dh)``, and :func:`multi_head_self_attention` wires them with the
projection weights laid out as in ``torch.nn.MultiheadAttention``.
"""

from __future__ import annotations

import numpy as np


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis``, safe for huge or tiny inputs.

    Subtracting the largest entry first leaves the answer unchanged (the common factor
    e^{-max} cancels) but keeps every exponent ≤ 0, so ``exp`` never overflows to inf
    and at least one term of each sum is exactly 1, so it never divides by 0.

    Args:
        x: (...) any shape; integers are promoted to float.
        axis: the axis whose entries become portions that add to 1.

    Returns:
        array of the same shape; float32 stays float32, everything else is float64.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    shifted = x - x.max(axis=axis, keepdims=True)
    exps = np.exp(shifted)
    return exps / exps.sum(axis=axis, keepdims=True)


def _check_attention_shapes(queries: np.ndarray, keys: np.ndarray, values: np.ndarray) -> None:
    for name, arr in (("queries", queries), ("keys", keys), ("values", values)):
        if arr.ndim < 2:
            raise ValueError(
                f"{name} must have at least 2 axes (..., tokens, width), got shape {arr.shape}; "
                f"a single token needs a token axis: {name}[None]."
            )
    if queries.shape[-1] != keys.shape[-1]:
        raise ValueError(
            f"queries and keys must have the same width to be dotted, got queries {queries.shape} "
            f"and keys {keys.shape} (last axes {queries.shape[-1]} ≠ {keys.shape[-1]})."
        )
    if keys.shape[-2] != values.shape[-2]:
        raise ValueError(
            f"keys and values must hold one row per token, got keys {keys.shape} and values "
            f"{values.shape} ({keys.shape[-2]} ≠ {values.shape[-2]} tokens)."
        )


def attention_scores(queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The scaled match grid: (..., Lq, Dk), (..., Lk, Dk) → (..., Lq, Lk).

    Dividing by √Dk keeps the scores' spread near 1 whatever the width, so the softmax
    does not saturate into a one-hot pick just because the vectors are long.
    """
    width = queries.shape[-1]
    return queries @ np.swapaxes(keys, -1, -2) / np.sqrt(width)


def scaled_dot_product_attention(
    queries: np.ndarray,
    keys: np.ndarray,
    values: np.ndarray,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Every query row takes a softmax-weighted average of the value rows.

    Args:
        queries: (..., Lq, Dk)
        keys: (..., Lk, Dk)
        values: (..., Lk, Dv)
        mask: optional boolean (..., Lq, Lk), broadcastable; True = may attend (the
            convention of ``torch.nn.functional.scaled_dot_product_attention``).
            Every row must keep at least one True.

    Returns:
        outputs: (..., Lq, Dv)
        weights: (..., Lq, Lk), each row sums to 1.

    Raises:
        ValueError: when the widths or token counts do not line up, or a mask row
            blocks every key.
    """
    queries, keys, values = (np.asarray(a) for a in (queries, keys, values))
    _check_attention_shapes(queries, keys, values)
    scores = attention_scores(queries, keys)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if not np.broadcast_to(mask, scores.shape).any(axis=-1).all():
            raise ValueError("the mask blocks every key for some query; each row needs one True.")
        scores = np.where(mask, scores, -np.inf)
    weights = softmax(scores, axis=-1)
    return weights @ values, weights


def split_heads(x: np.ndarray, n_heads: int) -> np.ndarray:
    """(..., L, H·Dh) → (..., H, L, Dh): each head gets its own slice of the width."""
    width = x.shape[-1]
    if n_heads < 1 or width % n_heads:
        raise ValueError(f"width {width} cannot be split into n_heads={n_heads} equal slices.")
    x = x.reshape(*x.shape[:-1], n_heads, width // n_heads)
    return np.swapaxes(x, -2, -3)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """(..., H, L, Dh) → (..., L, H·Dh): glue the heads' results side by side."""
    x = np.swapaxes(x, -2, -3)
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])


def multi_head_self_attention(
    x: np.ndarray,
    in_weight: np.ndarray,
    in_bias: np.ndarray,
    out_weight: np.ndarray,
    out_bias: np.ndarray,
    n_heads: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Self-attention with ``n_heads`` heads, weights in ``nn.MultiheadAttention``'s layout.

    Args:
        x: (..., L, D) tokens.
        in_weight: (3·D, D) stacked query, key and value projections (``in_proj_weight``).
        in_bias: (3·D,) (``in_proj_bias``).
        out_weight: (D, D) projection after the heads are glued (``out_proj.weight``).
        out_bias: (D,) (``out_proj.bias``).
        n_heads: H; D must be a multiple of H.

    Returns:
        outputs: (..., L, D)
        weights: (..., H, L, L), one attention grid per head.
    """
    qkv = x @ in_weight.T + in_bias                      # (..., L, 3D)
    queries, keys, values = np.split(qkv, 3, axis=-1)    # each (..., L, D)
    heads_out, weights = scaled_dot_product_attention(
        split_heads(queries, n_heads), split_heads(keys, n_heads), split_heads(values, n_heads)
    )                                                    # (..., H, L, Dh), (..., H, L, L)
    return merge_heads(heads_out) @ out_weight.T + out_bias, weights


def attention_pairs(n_tokens: int) -> int:
    """Entries in one attention grid: every token scores every token, itself included."""
    if n_tokens < 0:
        raise ValueError(f"n_tokens must be ≥ 0, got {n_tokens}.")
    return n_tokens * n_tokens


def patch_token_count(height: int, width: int, patch_size: int = 1) -> int:
    """Tokens an H×W image becomes when cut into P×P patches (P = 1: one token per pixel)."""
    if patch_size < 1 or height % patch_size or width % patch_size:
        raise ValueError(
            f"patch_size={patch_size} must be a positive divisor of both sides of a "
            f"{height}×{width} image."
        )
    return (height // patch_size) * (width // patch_size)
