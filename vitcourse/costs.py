"""What a ViT costs, in closed form: tokens, attention entries and memory, parameters, FLOPs.

Notation (as in the chapter): image H×W with C channels, patch P, N = (H/P)·(W/P) patches,
T = N + 1 tokens with a CLS token, width D, depth L, MLP ratio r, K classes.

* parameters  = (P²C·D + D)  patch projection
              + D + T_pos·D   CLS token and position rows (T_pos = N + 1, or N without a CLS position)
              + L·((4 + 2r)·D² + (9 + r)·D)   blocks: qkv 3D²+3D, proj D²+D, MLP 2rD²+rD+D, 2 LayerNorms 4D
              + 2D + (D·K + K)  final LayerNorm and head
* forward FLOPs (a multiply-add counts 2, as ``torch.utils.flop_counter`` counts):
              2·N·P²C·D  +  L·(2·T·D·(4 + 2r)·D  +  4·T²·D)  +  2·D·K

Only matrix products are counted; LayerNorm, softmax, GELU and the additions are a few
percent at these sizes.  Training is counted as 3 × forward (the backward pass does two
matrix products for each one of the forward pass).
"""

from __future__ import annotations

import pandas as pd

from vitcourse.vit import VARIANTS, ViTConfig, vit_config

BYTES_PER_ELEMENT = {"float32": 4, "bfloat16": 2, "float16": 2}


def _side(size, what: str) -> tuple[int, int]:
    """An int or an (height, width) pair → (height, width), checked."""
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f"{what} must be a positive int or a (height, width) pair of them, got {size!r}")
    return pair


def num_patches(image_size, patch_size) -> int:
    """Patches in an image: (H/P)·(W/P). Sizes are ints (square) or (height, width) pairs.

    >>> num_patches(384, 16), num_patches((224, 320), 16)
    (576, 280)
    """
    (height, width), (ph, pw) = _side(image_size, "image_size"), _side(patch_size, "patch_size")
    if height % ph or width % pw:
        raise ValueError(f"patch {ph}×{pw} does not tile a {height}×{width} image; "
                         f"resize or crop the image to a multiple of the patch size")
    return (height // ph) * (width // pw)


def num_tokens(image_size, patch_size, cls_token: bool = True) -> int:
    """Tokens the encoder sees: the patches, plus one CLS token if there is one."""
    return num_patches(image_size, patch_size) + int(cls_token)


def attention_entries_per_head(tokens: int) -> int:
    """One head's attention matrix is T × T: every token scores every token, itself included."""
    if not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"tokens must be a positive int, got {tokens!r}")
    return tokens * tokens


def attention_memory_bytes(tokens: int, heads: int, *, batch: int = 1, layers: int = 1,
                           dtype: str = "bfloat16") -> int:
    """Bytes to hold the attention weights of ``layers`` layers for ``batch`` images, if stored.

    This is what the explicit softmax path keeps for the backward pass (batch·layers·heads·T²
    entries); a fused kernel (``F.scaled_dot_product_attention``'s flash path) never stores
    them, which is why it can run where this number exceeds the GPU's memory.
    """
    if dtype not in BYTES_PER_ELEMENT:
        raise ValueError(f"dtype must be one of {', '.join(BYTES_PER_ELEMENT)}, got {dtype!r}")
    return batch * layers * heads * attention_entries_per_head(tokens) * BYTES_PER_ELEMENT[dtype]


def param_count(config: ViTConfig) -> int:
    """Trainable parameters of ``VisionTransformer(config)``, from the closed form (module docstring)."""
    c = config
    d, m = c.dim, c.mlp_dim                                      # m = r·D
    patch_proj = c.patch_size**2 * c.in_chans * d + d
    cls = d if c.has_cls else 0
    positions = (c.num_patches + int(c.has_cls and c.cls_position)) * d
    qkv_bias = 0 if c.qkv_bias else 3 * d
    block = 4 * d * d + 2 * d * m + 9 * d + m - qkv_bias         # = (4 + 2r)·D² + (9 + r)·D
    final = 2 * d + d * c.num_classes + c.num_classes
    return patch_proj + cls + positions + c.depth * block + final


def forward_flops(config: ViTConfig, *, include_head: bool = True) -> int:
    """Forward-pass FLOPs for one image: matrix products only, a multiply-add counted as 2."""
    c = config
    d, t = c.dim, c.num_tokens
    patch_proj = 2 * c.num_patches * c.patch_size**2 * c.in_chans * d
    projections = 2 * t * (4 * d * d + 2 * d * c.mlp_dim)       # qkv 3D², proj D², MLP 2rD² per token
    attention = 4 * t * t * d                                    # QKᵀ and weights·V, all heads together
    head = 2 * d * c.num_classes if include_head else 0
    return patch_proj + c.depth * (projections + attention) + head


def training_flops(config: ViTConfig) -> int:
    """FLOPs of one training step per image: forward + backward ≈ 3 × forward."""
    return 3 * forward_flops(config)


def variant_table(image_size: int = 224, patch_size: int = 16, num_classes: int = 1000,
                  names=("Ti", "S", "B", "L")) -> pd.DataFrame:
    """The paper's sizes at one resolution: width, depth, heads, tokens, parameters, GFLOPs."""
    rows = {}
    for name in names:
        config = vit_config(f"{name}/{patch_size}", image_size=image_size, num_classes=num_classes)
        rows[f"ViT-{name}/{patch_size}"] = {
            **VARIANTS[name], "tokens": config.num_tokens, "params": param_count(config),
            "GFLOPs forward": forward_flops(config) / 1e9,
        }
    frame = pd.DataFrame(rows).T
    return frame.astype({"dim": int, "depth": int, "heads": int, "tokens": int, "params": int})
