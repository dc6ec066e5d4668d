"""Swin Transformer (Liu et al., 2021): attention inside windows, shifted windows, a hierarchy.

    images (B, C, H, W)
      → PatchEmbed (conv, kernel = stride = P), LayerNorm           (B, h, w, D),  h = H/P, w = W/P
      → stage 1: depth₁ × SwinBlock, alternating                      (B, h, w, D)
                 W-MSA  (windows at 0, 0)  and
                 SW-MSA (the map rolled by −⌊M/2⌋ first, a mask for the wrapped regions)
      → PatchMerging: 2×2 neighbours concatenated, LN, Linear 4D→2D  (B, h/2, w/2, 2D)
      → stage 2 … (each later stage: half the resolution, twice the width)
      → final LayerNorm, mean over the positions, Linear → classes   logits (B, classes)

Feature maps travel channels-last, (B, H, W, C), so a window is a plain reshape.  Every
block reads a normalised copy of the stream and adds its result back (pre-norm, as in
:mod:`vitcourse.vit`, whose ``Attention``, ``Mlp``, ``DropPath`` and ``PatchEmbed`` are reused).

Windows of M × M tokens make attention's cost linear in the number of tokens (the paper's
eq. 1–2, counted in multiply-adds, :func:`global_attention_macs`, :func:`window_attention_macs`):

    global  MSA:  4·h·w·C² + 2·(h·w)²·C
    window  MSA:  4·h·w·C² + 2·M²·h·w·C

Layout and names follow the official code, so ``swin_config("T")`` has exactly its
28,288,354 parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
# Plain-text bars: they render in a terminal, in JupyterLab and in the offline book alike.
from vitcourse.progress import progress_bar

from vitcourse.cifar import CifarTrainer, Recipe, full_vit_recipe, quick_vit_recipe
from vitcourse.device import cpu_threads
from vitcourse.measure import counted_macs, median_seconds, peak_tensor_bytes
from vitcourse.profile import Profile, get_profile
from vitcourse.vit import Attention, DropPath, Mlp, PatchEmbed, ViTConfig, VisionTransformer

# ----------------------------------------------------------------------------------------------
# Windows: cut, paste back, shift mask, relative positions
# ----------------------------------------------------------------------------------------------


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """Cut a feature map into non-overlapping square windows.

    x (B, H, W, C) → windows (B·nW, window, window, C), nW = (H/window)·(W/window).
    Windows are ordered image by image, then row by row of windows (left to right, top
    to bottom); inside a window, tokens keep their row-major order.
    """
    if x.dim() != 4:
        raise ValueError(
            "window_partition wants a channels-last map (B, H, W, C), got shape "
            f"{tuple(x.shape)}"
        )
    if window < 1 or x.shape[1] % window or x.shape[2] % window:
        raise ValueError(
            f"window={window} must divide the map's height {x.shape[1]} and width "
            f"{x.shape[2]}; pad the map or pick a window that divides both"
        )
    batch, height, width, channels = x.shape
    x = x.view(batch, height // window, window, width // window, window, channels)
    # (B, rows of windows, row in window, cols of windows, col in window, C):
    # the two window indices first, then each window's rows and columns
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, channels)


def window_reverse(
    windows: torch.Tensor, window: int, height: int, width: int
) -> torch.Tensor:
    """Paste windows back into maps: the inverse of :func:`window_partition`.

    windows (B·nW, window, window, C) → x (B, height, width, C).
    """
    if windows.dim() != 4 or windows.shape[1] != window or windows.shape[2] != window:
        raise ValueError(
            f"window_reverse wants windows (B·nW, {window}, {window}, C), got "
            f"{tuple(windows.shape)}"
        )
    if height % window or width % window:
        raise ValueError(
            f"window={window} must divide height {height} and width {width}"
        )
    if len(windows) % (per_image := (height // window) * (width // window)):
        raise ValueError(
            f"{len(windows)} windows are not a whole number of {height}×{width} maps "
            f"({per_image} windows each)"
        )
    channels = windows.shape[-1]
    x = windows.view(-1, height // window, width // window, window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, channels)


def shift_regions(
    height: int, width: int, window: int, shift: int, device=None
) -> torch.Tensor:
    """Label each position of the *rolled* map by the region it came from: long
    (height, width).

    After ``torch.roll(x, (-shift, -shift), (1, 2))`` the last window row holds rows
    from the bottom of the image *and*, wrapped round, rows from its top; likewise the
    last window column. Cutting each axis at ``-window`` and ``-shift`` gives 3 × 3
    regions; tokens may attend to each other only inside one region.
    """
    labels = torch.zeros(height, width, dtype=torch.long, device=device)
    if shift == 0:
        return labels
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for i, rows in enumerate(cuts):
        for j, cols in enumerate(cuts):
            labels[rows, cols] = 3 * i + j
    return labels


def shifted_window_mask(
    height: int, width: int, window: int, shift: int, *, device=None
) -> torch.Tensor:
    """Which pairs shifted-window attention must block: bool (nW, window², window²).

    ``True`` where query and key came from different regions after the cyclic shift
    (:func:`shift_regions`), i.e. where they are neighbours only because the roll
    wrapped the map round. ``shift=0`` blocks nothing.
    """
    if height % window or width % window:
        raise ValueError(
            f"window={window} must divide the map's height {height} and width {width}"
        )
    if not 0 <= shift < window:
        raise ValueError(
            f"shift must be in [0, window={window}), got {shift}; Swin uses window // 2"
        )
    labels = shift_regions(height, width, window, shift, device=device)
    # (nW, window²)
    per_window = window_partition(labels[None, :, :, None], window).flatten(1)
    return per_window[:, :, None] != per_window[:, None, :]


def relative_position_index(window: int) -> torch.Tensor:
    """For every (query, key) pair of a window, the row of the bias table: long
    (window², window²).

    With dy = y_query − y_key and dx = x_query − x_key (each in −(window−1) …
    window−1), the row is (dy + window − 1)·(2·window − 1) + (dx + window − 1): the
    official Swin indexing, values in [0, (2·window − 1)²).
    """
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()  # (window²,) row-major, as in a window
    dy = ys[:, None] - ys[None, :]
    dx = xs[:, None] - xs[None, :]
    return (dy + window - 1) * (2 * window - 1) + (dx + window - 1)


# ----------------------------------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------------------------------


class WindowAttention(Attention):
    """Multi-head self-attention inside each window, with a learned relative position
    bias.

    x (B·nW, N, C) with N = window² → (B·nW, N, C), and the weights (B·nW, heads, N, N)
    when asked for. The fused qkv and output projections are
    :class:`vitcourse.vit.Attention`'s; added here is the bias table ((2·window − 1)²,
    heads): one learned number per head for each of the (2·window − 1)² possible
    offsets (dy, dx), looked up through :func:`relative_position_index` and added to
    the scores before the softmax.

    ``mask``: (nW, N, N), bool (``True`` = blocked, as :func:`shifted_window_mask`
    returns) or float (added to the scores as it is, e.g. 0 / −inf). The windows of x
    must then come image by image, nW per image, as :func:`window_partition` orders
    them.
    """

    def __init__(
        self,
        dim: int,
        window: int,
        heads: int,
        qkv_bias: bool = True,
        attn_dropout: float = 0.0,
        dropout: float = 0.0,
    ):
        super().__init__(dim, heads, qkv_bias, attn_dropout, dropout)
        self.window = window
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window - 1) ** 2, heads)
        )
        self.register_buffer(
            "relative_position_index", relative_position_index(window), persistent=False
        )
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self) -> torch.Tensor:
        """The bias each head adds to the scores: (heads, N, N)."""
        n = self.window**2
        # (N·N, heads)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, self.heads).permute(2, 0, 1)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ):
        windows, tokens, dim = x.shape
        if tokens != self.window**2:
            raise ValueError(
                f"WindowAttention(window={self.window}) wants {self.window**2} tokens "
                f"per window, got x of shape {tuple(x.shape)}; cut the map with "
                "window_partition first"
            )
        head_dim = dim // self.heads
        q, k, v = (
            t.transpose(1, 2)
            for t in self.qkv(x)
            .view(windows, tokens, 3, self.heads, head_dim)
            .unbind(2)
        )
        bias = self.position_bias()[None]  # (1, heads, N, N)
        if mask is not None:
            per_image = len(mask)
            if mask.shape != (per_image, tokens, tokens) or windows % per_image:
                raise ValueError(
                    f"mask must be (nW, {tokens}, {tokens}) with nW dividing the "
                    f"{windows} windows, got {tuple(mask.shape)}"
                )
            if mask.dtype == torch.bool:
                mask = torch.zeros(
                    mask.shape, dtype=bias.dtype, device=mask.device
                ).masked_fill_(mask, float("-inf"))
            # (nW, heads, N, N) → (1, nW·heads, N, N), and q, k, v (B·nW, heads, N, d) →
            # (B, nW·heads, N, d):
            # four dimensions, as every fused kernel takes them, and the mask broadcasts
            # over the images.
            bias = (bias + mask[:, None].to(bias.dtype)).reshape(
                1, per_image * self.heads, tokens, tokens
            )
            q, k, v = (
                t.reshape(-1, per_image * self.heads, tokens, head_dim)
                for t in (q, k, v)
            )
        drop = self.attn_dropout if self.training else 0.0
        weights = None
        if return_weights:
            weights = torch.softmax(
                q @ k.transpose(-2, -1) * head_dim**-0.5 + bias, dim=-1
            )
            mixed = F.dropout(weights, drop) @ v
            weights = weights.reshape(windows, self.heads, tokens, tokens)
        else:
            mixed = F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias.to(q.dtype), dropout_p=drop
            )
        mixed = (
            mixed.reshape(windows, self.heads, tokens, head_dim)
            .transpose(1, 2)
            .reshape(windows, tokens, dim)
        )
        return self.proj_drop(self.proj(mixed)), weights

    def extra_repr(self) -> str:
        return f"window={self.window}, heads={self.heads}"


class SwinBlock(nn.Module):
    """One pre-norm Swin block: x (B, H, W, C) → (B, H, W, C), and the window weights
    if asked.

    ``shift=0``: W-MSA, attention inside the regular windows. ``shift>0``: SW-MSA, the
    map is rolled by (−shift, −shift) first, attended in the same windows with the
    shift mask, and rolled back — so this block's windows straddle the previous block's
    borders. When the map is no larger than one window the shift would only reorder it,
    so it is skipped (as in the official code). The MLP works on each position alone.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        window: int,
        shift: int = 0,
        mlp_ratio: float = 4.0,
        *,
        qkv_bias: bool = True,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        drop_path: float = 0.0,
        norm_eps: float = 1e-5,
    ):
        super().__init__()
        if not 0 <= shift < window:
            raise ValueError(
                f"shift must be in [0, window={window}), got {shift}; Swin uses window "
                "// 2"
            )
        self.dim, self.window, self.shift = dim, window, shift
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = WindowAttention(dim, window, heads, qkv_bias, attn_dropout, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(mlp_ratio * dim), dropout)
        self.drop_path = DropPath(drop_path)
        # (H, W, device) → mask: the same for every batch of one size
        self._masks: dict = ({})

    def mask_for(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        key = (height, width, str(device))
        if key not in self._masks:
            self._masks[key] = shifted_window_mask(
                height, width, self.window, self.shift, device=device
            )
        return self._masks[key]

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        if x.dim() != 4 or x.shape[-1] != self.dim:
            raise ValueError(
                f"SwinBlock wants a channels-last map (B, H, W, {self.dim}), got "
                f"{tuple(x.shape)}"
            )
        batch, height, width, channels = x.shape
        shift = self.shift if min(height, width) > self.window else 0
        shifted = self.norm1(x)
        if shift:
            shifted = torch.roll(shifted, shifts=(-shift, -shift), dims=(1, 2))
        windows = window_partition(shifted, self.window).flatten(1, 2)  # (B·nW, N, C)
        mask = self.mask_for(height, width, x.device) if shift else None
        mixed, weights = self.attn(windows, mask, return_weights)
        mixed = mixed.view(-1, self.window, self.window, channels)
        mixed = window_reverse(mixed, self.window, height, width)
        if shift:
            mixed = torch.roll(mixed, shifts=(shift, shift), dims=(1, 2))
        x = x + self.drop_path(mixed)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x, weights

    def extra_repr(self) -> str:
        return f"window={self.window}, shift={self.shift}"


class PatchMerging(nn.Module):
    """Halve the resolution, double the width: x (B, H, W, C) → (B, H/2, W/2, 2C).
    Each 2×2 block of neighbours becomes one 4C vector (in the official code's
    order), normalised and projected 4C → 2C without bias: a strided 2×2 convolution."""

    def __init__(self, dim: int, norm_eps: float = 1e-5):
        super().__init__()
        self.dim = dim
        self.norm = nn.LayerNorm(4 * dim, eps=norm_eps)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[-1] != self.dim:
            raise ValueError(
                f"PatchMerging wants a channels-last map (B, H, W, {self.dim}), got "
                f"{tuple(x.shape)}"
            )
        if x.shape[1] % 2 or x.shape[2] % 2:
            raise ValueError(
                "PatchMerging needs an even height and width, got "
                f"{x.shape[1]}×{x.shape[2]}"
            )
        x00, x10 = x[:, 0::2, 0::2], x[:, 1::2, 0::2]  # top-left, bottom-left
        x01, x11 = x[:, 0::2, 1::2], x[:, 1::2, 1::2]  # top-right, bottom-right
        return self.reduction(self.norm(torch.cat([x00, x10, x01, x11], dim=-1)))


class SwinStage(nn.Module):
    """``depth`` blocks, shift 0 and ⌊window/2⌋ alternating, then (optionally) a PatchMerging.

    x (B, H, W, C) → (B, H/2, W/2, 2C) with merging, (B, H, W, C) without.
    """

    def __init__(self, dim: int, depth: int, heads: int, window: int, *, merge: bool, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, dropout: float = 0.0, attn_dropout: float = 0.0,
                 drop_paths: list[float] | None = None):
        super().__init__()
        drop_paths = drop_paths or [0.0] * depth
        self.blocks = nn.ModuleList(
            SwinBlock(dim, heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio, qkv_bias=qkv_bias,
                      dropout=dropout, attn_dropout=attn_dropout, drop_path=drop_paths[i])
            for i in range(depth))
        self.downsample = PatchMerging(dim) if merge else None

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        weights = []
        for block in self.blocks:
            x, w = block(x, return_weights)
            weights.append(w)
        if self.downsample is not None:
            x = self.downsample(x)
        return x, weights


# ----------------------------------------------------------------------------------------------
# The classifier
# ----------------------------------------------------------------------------------------------

# The paper's sizes (Table 1 of Swin): width of stage 1, blocks per stage, heads per stage.
SWIN_VARIANTS = {
    "T": dict(embed_dim=96, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24)),
    "S": dict(embed_dim=96, depths=(2, 2, 18, 2), heads=(3, 6, 12, 24)),
    "B": dict(embed_dim=128, depths=(2, 2, 18, 2), heads=(4, 8, 16, 32)),
}


@dataclass(frozen=True)
class SwinConfig:
    """Every size and switch of a :class:`SwinTransformer`.

    Attributes:
        image_size, patch_size, in_chans, num_classes: as in :class:`vitcourse.vit.ViTConfig`.
        embed_dim: width of stage 1; stage s has ``embed_dim · 2^s``.
        depths, heads: blocks and attention heads of each stage (one entry per stage).
        window: the side M of the square attention windows.
        mlp_ratio, qkv_bias, dropout, attn_dropout: as in ViTConfig.
        drop_path: stochastic depth of the last block, rising linearly from 0 over all blocks.

    Each stage's map, (image_size / patch_size) / 2^s, must be divisible by the window and,
    before a merge, even.
    """

    image_size: int = 32
    patch_size: int = 2
    in_chans: int = 3
    num_classes: int = 10
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 4, 2)
    heads: tuple[int, ...] = (3, 6, 12)
    window: int = 4
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    dropout: float = 0.0
    attn_dropout: float = 0.0
    drop_path: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "depths", tuple(self.depths))   # lists from asdict/JSON → tuples
        object.__setattr__(self, "heads", tuple(self.heads))
        for name in ("image_size", "patch_size", "in_chans", "num_classes", "embed_dim", "window"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.depths or len(self.depths) != len(self.heads):
            raise ValueError(f"depths and heads need one entry per stage, got {self.depths} and {self.heads}")
        if self.image_size % self.patch_size:
            raise ValueError(f"patch_size={self.patch_size} must divide image_size={self.image_size}")
        for stage, (side, dim, heads) in enumerate(zip(self.resolutions, self.dims, self.heads)):
            if side % self.window:
                raise ValueError(f"stage {stage + 1}'s map is {side}×{side}, not divisible by window={self.window}; "
                                 f"change the window, the patch size, the image size or the number of stages")
            if stage < len(self.depths) - 1 and side % 2:
                raise ValueError(f"stage {stage + 1}'s map is {side}×{side}: odd, so patch merging cannot halve it")
            if dim % heads:
                raise ValueError(f"stage {stage + 1}'s width {dim} must split evenly into {heads} heads")
        for name in ("dropout", "attn_dropout", "drop_path"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")

    @property
    def resolutions(self) -> list[int]:
        """The side of each stage's (square) map, in tokens."""
        return [self.image_size // self.patch_size // 2**s for s in range(len(self.depths))]

    @property
    def dims(self) -> list[int]:
        """The width of each stage."""
        return [self.embed_dim * 2**s for s in range(len(self.depths))]

    @property
    def num_features(self) -> int:
        return self.dims[-1]


def swin_config(name: str, **overrides) -> SwinConfig:
    """A named Swin at 224 × 224, patch 4, window 7, 1000 classes: ``"T"``, ``"S"`` or ``"B"``.

    >>> swin_config("T").depths, swin_config("T").resolutions
    ((2, 2, 6, 2), [56, 28, 14, 7])
    """
    if name not in SWIN_VARIANTS:
        raise ValueError(f"unknown Swin {name!r}; choose one of {', '.join(SWIN_VARIANTS)}")
    base = SwinConfig(image_size=224, patch_size=4, num_classes=1000, window=7, drop_path=0.2,
                      **SWIN_VARIANTS[name])
    return replace(base, **overrides)


class SwinTransformer(nn.Module):
    """images (B, C, H, W) → logits (B, classes). See the module docstring and :class:`SwinConfig`."""

    def __init__(self, config: SwinConfig | None = None):
        super().__init__()
        self.config = c = config or SwinConfig()
        self.patch_embed = PatchEmbed(c.image_size, c.patch_size, c.in_chans, c.embed_dim)
        self.patch_norm = nn.LayerNorm(c.embed_dim)
        self.pos_drop = nn.Dropout(c.dropout)
        blocks = sum(c.depths)
        rates = [c.drop_path * i / max(blocks - 1, 1) for i in range(blocks)]   # as torch.linspace(0, p, blocks)
        starts = [sum(c.depths[:s]) for s in range(len(c.depths))]
        self.stages = nn.ModuleList(
            SwinStage(dim, depth, heads, c.window, merge=s < len(c.depths) - 1, mlp_ratio=c.mlp_ratio,
                      qkv_bias=c.qkv_bias, dropout=c.dropout, attn_dropout=c.attn_dropout,
                      drop_paths=rates[starts[s]:starts[s] + depth])
            for s, (dim, depth, heads) in enumerate(zip(c.dims, c.depths, c.heads)))
        self.norm = nn.LayerNorm(c.num_features)
        self.head = nn.Linear(c.num_features, c.num_classes)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Truncated-normal weights (std 0.02) for Linear layers, zero biases (as the official code)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward_features(self, images: torch.Tensor, return_weights: bool = False):
        """images → the last stage's normalised map (B, h, w, C_last), and every block's window weights.

        The weights are a list per stage of (B·nW, heads, N, N) tensors (None unless asked for).
        """
        side = self.config.image_size // self.config.patch_size
        x = self.patch_embed(images).view(len(images), side, side, -1)              # (B, h, w, D)
        x = self.pos_drop(self.patch_norm(x))
        all_weights = []
        for stage in self.stages:
            x, weights = stage(x, return_weights)
            all_weights.append(weights)
        return self.norm(x), (all_weights if return_weights else None)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features, _ = self.forward_features(images)
        return self.head(features.mean(dim=(1, 2)))                                 # average over positions


# ----------------------------------------------------------------------------------------------
# Costs: the paper's formulas, and the measured scaling (tools in vitcourse.measure)
# ----------------------------------------------------------------------------------------------


def global_attention_macs(height: int, width: int, dim: int) -> int:
    """Multiply-adds of one global MSA layer on an h × w map of width C (Swin eq. 1).

    4·h·w·C² for the q, k, v and output projections, 2·(h·w)²·C for QKᵀ and weights × V.
    """
    tokens = height * width
    return 4 * tokens * dim**2 + 2 * tokens**2 * dim


def window_attention_macs(height: int, width: int, dim: int, window: int) -> int:
    """Multiply-adds of one window MSA layer (Swin eq. 2): 4·h·w·C² + 2·M²·h·w·C.

    Each of the h·w tokens scores only the M² tokens of its window, so the second term is
    linear in the number of tokens.
    """
    tokens = height * width
    return 4 * tokens * dim**2 + 2 * window**2 * tokens * dim


@torch.no_grad()
def attention_scaling(sides, dim: int = 96, heads: int = 3, window: int = 7, *, device: torch.device | str = "cpu",
                      repeats: int = 5, seed: int = 0, threads: int | None = 1, progress: bool = True) -> pd.DataFrame:
    """Measure one attention layer, global against windowed, on square maps of growing side.

    For each side s (a multiple of ``window``) a random map (1, s, s, dim) goes through
    :class:`vitcourse.vit.Attention` over all s² tokens ("global") and through
    :class:`WindowAttention` after :func:`window_partition` ("window"), each by the explicit
    softmax path (the weights are materialised, as training keeps them) and by the fused
    ``scaled_dot_product_attention`` path. One row per (side, attention, path): tokens,
    ``seconds`` of a forward pass in the steady state (inference, no autograd; the median of
    ``repeats`` timed loops after warm-up, :func:`median_seconds`), ``peak_bytes`` of the
    tensors it created (:func:`peak_tensor_bytes`), ``counted_macs`` (the multiply-adds
    PyTorch's FLOP counter finds in the explicit path, :func:`counted_macs`; both paths compute
    the same products) and ``macs``, the paper's formula.

    ``threads``: on the CPU, the intra-op threads to time with (restored afterwards; None
    leaves them). One by default: on a shared machine a thread that waits for a busy core at
    each of the many small parallel regions turns microseconds into milliseconds, and the
    curve shows the scheduler instead of the arithmetic.
    """
    with cpu_threads(threads if torch.device(device).type == "cpu" else None):
        return _attention_scaling(sides, dim, heads, window, device, repeats, seed, progress)


def _attention_scaling(sides, dim, heads, window, device, repeats, seed, progress) -> pd.DataFrame:
    torch.manual_seed(seed)
    layers = {"global": Attention(dim, heads).to(device).eval(),
              "window": WindowAttention(dim, window, heads).to(device).eval()}
    runs = {
        "global": lambda x, weights: layers["global"](x.flatten(1, 2), return_weights=weights),
        "window": lambda x, weights: layers["window"](window_partition(x, window).flatten(1, 2),
                                                      return_weights=weights),
    }
    rows = []
    sides = list(sides)
    bar = progress_bar(len(sides), "attention scaling", enabled=progress, unit="size")
    for side in sides:
        x = torch.randn(1, side, side, dim, device=device)
        macs = {"global": global_attention_macs(side, side, dim),
                "window": window_attention_macs(side, side, dim, window)}
        for kind, run in runs.items():
            counted = counted_macs(run, x, True)
            for path, weights in (("explicit", True), ("fused", False)):
                _, peak = peak_tensor_bytes(run, x, weights)
                seconds = median_seconds(run, x, weights, repeats=repeats, device=device)
                rows.append({"side": side, "tokens": side * side, "attention": kind, "path": path,
                             "seconds": seconds, "peak_bytes": peak, "counted_macs": counted,
                             "macs": macs[kind]})
        bar.update()
    bar.close()
    return pd.DataFrame(rows)


def forward_macs(config: SwinConfig | ViTConfig) -> int:
    """Multiply-adds of one image's forward pass of a Swin or ViT built from ``config``:
    the matrix products that :func:`vitcourse.measure.counted_macs` finds on the
    ``meta`` device (no memory, no arithmetic), through the explicit attention path:
    the counter cannot see inside the CPU's fused kernel."""
    if not isinstance(config, (SwinConfig, ViTConfig)):
        raise TypeError(f"forward_macs wants a SwinConfig or a ViTConfig, "
                        f"got {type(config).__name__}")
    side = config.image_size
    with torch.device("meta"):
        if isinstance(config, SwinConfig):
            model = SwinTransformer(config)
            def forward(x):
                features, _ = model.forward_features(x, return_weights=True)
                return model.head(features.mean((1, 2)))       # mean over the map
        else:
            model = VisionTransformer(config)
            def forward(x):
                tokens, _ = model.forward_features(x, return_weights=True)
                return model.head(model.pool(tokens))          # CLS token or mean
        return counted_macs(forward, torch.empty(1, config.in_chans, side, side))


def compare_models(runs: dict) -> pd.DataFrame:
    """One row per trained model: what it costs and what it reached, on the same data and budget.

    ``runs``: {name: (trainer, seconds)} — a finished :class:`vitcourse.cifar.CifarTrainer` (ViT
    or Swin) and the seconds its run took (:func:`vitcourse.cifar.timed_fit`). Columns:
    parameters, multiply-adds (one image's forward pass, :func:`forward_macs`), test accuracy,
    test loss, seconds.
    """
    rows = {}
    for name, (trainer, seconds) in runs.items():
        history = trainer.history()
        if history.empty:
            raise ValueError(f"{name!r} has not finished an epoch: train it (timed_fit) before comparing")
        rows[name] = {"parameters": sum(p.numel() for p in trainer.model.parameters()),
                      "multiply-adds": forward_macs(trainer.recipe.model),
                      "test accuracy": float(history["test_acc"].iloc[-1]),
                      "test loss": float(history["test_loss"].iloc[-1]), "seconds": float(seconds)}
    return pd.DataFrame(rows).T.astype({"parameters": int, "multiply-adds": int})


def cost_findings(table: pd.DataFrame, first: str, second: str) -> str:
    """What :func:`compare_models`' ``table`` shows of ``second``'s cost against ``first``'s, as a
    sentence: the ratios of parameters, multiply-adds and seconds, and which model was the slower
    per multiply-add when the two ratios differ by more than a quarter.

    (Their accuracies are compared image by image, with :func:`vitcourse.stats.paired_gain`.)
    """
    from vitcourse.report import fmt

    a, b = table.loc[first], table.loc[second]
    ratio = {column: b[column] / a[column] for column in ("parameters", "multiply-adds", "seconds")}
    cost = (f"{second} has {fmt(ratio['parameters'], 'x')} the parameters of {first}, does "
            f"{fmt(ratio['multiply-adds'], 'x')} its multiply-adds per image, and its run took "
            f"{fmt(ratio['seconds'], 'x')} its time.")
    if ratio["seconds"] > 1.25 * ratio["multiply-adds"]:
        cost += (f" Per multiply-add {second} was the slower: multiply-adds are not time, and the counter "
                 "sees only matrix products, not the reshapes, rolls and masks that windows add.")
    elif ratio["seconds"] * 1.25 < ratio["multiply-adds"]:
        cost += f" Per multiply-add {first} was the slower."
    return cost


# ----------------------------------------------------------------------------------------------
# Training on CIFAR-shaped data: the engine's classification task with a Swin
# ----------------------------------------------------------------------------------------------

# The full profile's CIFAR Swin: patch 2 gives a 16×16 map; stages at 16, 8, 4 with window 4
# (the last stage is one window); 5.93 M parameters.
CIFAR_SWIN = SwinConfig(image_size=32, patch_size=2, embed_dim=96, depths=(2, 4, 2), heads=(3, 6, 12), window=4,
                        drop_path=0.1)
# The quick profile's: patch 4 gives an 8×8 map, two stages (8×8 in four windows, then 4×4); 0.14 M parameters.
QUICK_SWIN = SwinConfig(image_size=32, patch_size=4, embed_dim=32, depths=(2, 2), heads=(2, 4), window=4,
                        drop_path=0.0)

def full_swin_recipe(**overrides) -> Recipe:
    """The GPU recipe of :func:`vitcourse.cifar.full_vit_recipe` (200 epochs, batch 1,024, mixup/CutMix) for
    CIFAR_SWIN."""
    return full_vit_recipe(model=CIFAR_SWIN, **overrides)


def quick_swin_recipe(**overrides) -> Recipe:
    """:func:`vitcourse.cifar.quick_vit_recipe`'s budget (3 epochs on 10,000 images) for QUICK_SWIN."""
    return quick_vit_recipe(**{"model": QUICK_SWIN, **overrides})


def swin_recipe_for(profile: Profile | None = None, **overrides) -> Recipe:
    """``quick_swin_recipe`` in the quick profile, ``full_swin_recipe`` in the full one."""
    profile = profile or get_profile()
    return profile.pick(quick=quick_swin_recipe, full=full_swin_recipe)(**overrides)


class SwinTrainer(CifarTrainer):
    """:class:`vitcourse.cifar.CifarTrainer` for a :class:`SwinTransformer`.

    ``recipe.model`` is a SwinConfig. The engine and the classification task are the
    ViT's — augmentation, AdamW, schedule, bf16, compile, DDP, checkpoints,
    evaluation; only the model built differs.
    """

    def __init__(self, recipe: Recipe, x_train, y_train, x_test, y_test,
                 dist_info=None):
        if not isinstance(recipe.model, SwinConfig):
            kind = type(recipe.model).__name__
            raise ValueError(f"SwinTrainer wants recipe.model to be a SwinConfig, "
                             f"got {kind}; use vitcourse.cifar.CifarTrainer for a ViT")
        super().__init__(recipe, x_train, y_train, x_test, y_test, dist_info,
                         build_model=lambda: SwinTransformer(recipe.model))
