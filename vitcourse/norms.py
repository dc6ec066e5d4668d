"""Per-token normalisation in NumPy: LayerNorm and its cheaper cousin RMSNorm.

Both look at one token's own ``D`` numbers (the last axis) and nothing else: not the
other tokens, not the other images in the batch. That is why they give the same answer
in training and at test time, and for a batch of one.
"""

from __future__ import annotations

import numpy as np


def _check_affine(name: str, param: np.ndarray | None, width: int) -> None:
    if param is not None and np.shape(param) not in ((), (width,)):
        raise ValueError(
            f"{name} must be a scalar or have shape ({width},) to match the last axis of x, "
            f"got shape {np.shape(param)}."
        )


def layer_norm(
    x: np.ndarray,
    gamma: np.ndarray | None = None,
    beta: np.ndarray | None = None,
    eps: float = 1e-5,
) -> np.ndarray:
    """Centre each token to mean 0 and scale it to spread 1, then stretch and shift.

    ``y = gamma · (x − mean) / √(var + eps) + beta`` with mean and (biased) variance taken
    over the last axis, as ``torch.nn.LayerNorm(D)`` does.

    Args:
        x: (..., D)
        gamma: (D,) stretch, default 1.
        beta: (D,) shift, default 0.
        eps: keeps the division finite for a constant token.

    Returns:
        (..., D)
    """
    x = np.asarray(x, dtype=np.result_type(x, np.float32))
    _check_affine("gamma", gamma, x.shape[-1])
    _check_affine("beta", beta, x.shape[-1])
    # keepdims leaves a length-1 last axis, so the subtraction lines up slot by slot.
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y


def rms_norm(x: np.ndarray, gamma: np.ndarray | None = None, eps: float = 1e-6) -> np.ndarray:
    """Scale each token by its root-mean-square; no centring, no shift.

    ``y = gamma · x / √(mean(x²) + eps)`` over the last axis, as ``torch.nn.RMSNorm(D, eps)``.

    Args:
        x: (..., D)
        gamma: (D,) stretch, default 1.
        eps: keeps the division finite for an all-zero token.

    Returns:
        (..., D)
    """
    x = np.asarray(x, dtype=np.result_type(x, np.float32))
    _check_affine("gamma", gamma, x.shape[-1])
    y = x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)
    return y if gamma is None else y * gamma
