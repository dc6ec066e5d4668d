"""The Vision Transformer of the paper (Dosovitskiy et al., 2021), as small composable modules.

    images (B, C, H, W)
      → PatchEmbed: conv with kernel = stride = P              (B, N, D),  N = (H/P)·(W/P)
      → prepend the CLS token (pool="cls")                     (B, T, D),  T = N + 1 (or N)
      → + learned positions, dropout
      → depth × Block:  x = x + DropPath(Attention(LN(x)))     pre-norm: normalise the branch's
                        x = x + DropPath(Mlp(LN(x)))           input, never the residual stream
      → final LayerNorm
      → read out: the CLS row, or the mean of the patch rows   (B, D)
      → head: Linear D → classes                               logits (B, classes)

Everything is sized by one :class:`ViTConfig`; :func:`vit_config` gives the paper's named
sizes (Ti, S, B, L, H).  Attention goes through ``F.scaled_dot_product_attention``; asked
for its weights it computes them step by step instead, for pictures.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

POOLS = ("cls", "mean")

# The paper's sizes (Table 1 of the ViT paper; Ti and S come from DeiT): width, depth, heads.
VARIANTS = {
    "Ti": dict(dim=192, depth=12, heads=3),
    "S": dict(dim=384, depth=12, heads=6),
    "B": dict(dim=768, depth=12, heads=12),
    "L": dict(dim=1024, depth=24, heads=16),
    "H": dict(dim=1280, depth=32, heads=16),
}


@dataclass(frozen=True)
class ViTConfig:
    """Every size and switch of a :class:`VisionTransformer`.

    Attributes:
        image_size, patch_size: square images cut into a (image_size/patch_size)² grid.
        in_chans: colour channels of the input (3 for RGB).
        num_classes: outputs of the head.
        dim, depth, heads: token width D, number of blocks, attention heads (D/heads each).
        mlp_ratio: the MLP's hidden width is ``mlp_ratio · D`` (4 in the paper).
        pool: ``"cls"`` reads the CLS token out; ``"mean"`` averages the patch tokens and has
            no CLS token at all.
        cls_position: whether the CLS token gets its own learned position row (the paper: yes).
        qkv_bias: biases on the query/key/value projection.
        dropout: after the position add, after attention's output projection and in the MLP.
        attn_dropout: on the attention weights.
        drop_path: stochastic depth of the *last* block; it rises linearly from 0 at the first.
        norm_eps: LayerNorm's epsilon (1e-6 as in the paper's code).
    """

    image_size: int = 32
    patch_size: int = 4
    in_chans: int = 3
    num_classes: int = 10
    dim: int = 256
    depth: int = 6
    heads: int = 8
    mlp_ratio: float = 4.0
    pool: str = "cls"
    cls_position: bool = True
    qkv_bias: bool = True
    dropout: float = 0.0
    attn_dropout: float = 0.0
    drop_path: float = 0.0
    norm_eps: float = 1e-6

    def __post_init__(self):
        for name in ("image_size", "patch_size", "in_chans", "num_classes", "dim", "depth", "heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"patch_size={self.patch_size} must divide image_size={self.image_size} "
                             f"(a partial patch at the edge would be dropped)")
        if self.dim % self.heads:
            raise ValueError(f"dim={self.dim} must split evenly into heads={self.heads}")
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")
        if self.mlp_ratio <= 0 or not float(self.mlp_ratio * self.dim).is_integer():
            raise ValueError(f"mlp_ratio · dim must be a positive whole number, got {self.mlp_ratio} · {self.dim}")
        for name in ("dropout", "attn_dropout", "drop_path"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def has_cls(self) -> bool:
        return self.pool == "cls"

    @property
    def num_tokens(self) -> int:
        """Tokens the blocks see: the patches, plus one for the CLS token."""
        return self.num_patches + int(self.has_cls)

    @property
    def mlp_dim(self) -> int:
        return int(self.mlp_ratio * self.dim)


def vit_config(name: str, **overrides) -> ViTConfig:
    """A named ViT: ``"B/16"`` is ViT-Base with 16×16 patches, at 224×224 with 1000 classes.

    >>> vit_config("S/16").dim, vit_config("B/16", image_size=384).num_patches
    (384, 576)
    """
    size, _, patch = name.partition("/")
    if size not in VARIANTS or not patch.isdigit():
        raise ValueError(f"unknown ViT {name!r}; write SIZE/PATCH with SIZE one of "
                         f"{', '.join(VARIANTS)}, e.g. 'B/16'")
    base = ViTConfig(image_size=224, patch_size=int(patch), num_classes=1000, **VARIANTS[size])
    return replace(base, **overrides)


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    dropout_p: float = 0.0,
    return_weights: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """softmax(q kᵀ / √d) v for every head: (B, H, T, d) queries, keys, values → (B, H,
    T, d).

    Returns the mixed values and, with ``return_weights``, the weights (B, H, T, T)
    (else None). PyTorch's fused kernel (``F.scaled_dot_product_attention``) runs it
    without storing the T×T weights, except in two cases where the step-by-step form is
    used:

    * ``return_weights=True``, for pictures of where each token looks;
    * a CPU under bf16 autocast: the fused CPU kernel has no fast bf16 path for short
      sequences, while the two step-by-step products are plain bf16 matrix products,
      which run on bf16 units where the CPU has them.

    The softmax always runs in (at least) float32. CPU autocast would leave it in bf16,
    where PyTorch's kernel for short rows is both coarser and slower than the float32
    one.
    """
    if not return_weights and not (
        q.device.type == "cpu" and torch.is_autocast_enabled("cpu")
    ):
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p), None
    # Scale the queries (B·H·T·d numbers) rather than the scores (B·H·T·T): the same
    # result, less work.
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    weights = torch.softmax(
        scores, dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32)
    )
    mixed = F.dropout(weights, dropout_p).to(v.dtype) @ v
    return mixed, (weights if return_weights else None)


class PatchEmbed(nn.Module):
    """images (B, C, H, W) → patch tokens (B, N, D).

    A convolution whose kernel and stride both equal the patch size sees every patch once
    and applies the same Linear P·P·C → D to each: exactly "cut into patches, flatten,
    project" (chapter 4), in one fast kernel.
    """

    def __init__(self, image_size: int, patch_size: int, in_chans: int, dim: int):
        super().__init__()
        self.image_size, self.patch_size, self.in_chans = image_size, patch_size, in_chans
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor, any_size: bool = False) -> torch.Tensor:
        """``any_size``: accept any H, W that are multiples of the patch size, not only the model's own."""
        want = (self.in_chans, self.image_size, self.image_size)
        fits = images.dim() == 4 and (
            images.shape[1] == self.in_chans and not images.shape[2] % self.patch_size and not images.shape[3] % self.patch_size
            if any_size else tuple(images.shape[1:]) == want)
        if not fits:
            hint = (" — channels-last? use images.permute(0, 3, 1, 2)"
                    if images.dim() == 4 and images.shape[-1] == self.in_chans else "")
            size = f"H, W multiples of the patch size {self.patch_size}" if any_size else ", ".join(map(str, want[1:]))
            raise ValueError(f"PatchEmbed wants images of shape (B, {self.in_chans}, {size}), "
                             f"got {tuple(images.shape)}{hint}")
        return self.proj(images).flatten(2).transpose(1, 2)   # (B, D, H/P, W/P) → (B, N, D)


class Attention(nn.Module):
    """Multi-head self-attention with one fused query/key/value projection.

    x (B, T, D) → (B, T, D), and the weights (B, heads, T, T) when asked for (else
    None). :func:`attend` runs softmax(QKᵀ/√d)V as one fused kernel
    that never stores the T×T weights; ``return_weights=True`` computes the same thing
    step by step so the weights can be drawn.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        qkv_bias: bool = True,
        attn_dropout: float = 0.0,
        dropout: float = 0.0,
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must split evenly into heads={heads}")
        self.heads, self.attn_dropout = heads, attn_dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        batch, tokens, dim = x.shape
        head_dim = dim // self.heads
        # (B, T, 3D) → three (B, heads, T, head_dim) views of the one projection.
        q, k, v = (
            t.transpose(1, 2)
            for t in self.qkv(x).view(batch, tokens, 3, self.heads, head_dim).unbind(2)
        )
        drop = self.attn_dropout if self.training else 0.0
        mixed, weights = attend(q, k, v, drop, return_weights)
        # heads side by side again
        mixed = mixed.transpose(1, 2).reshape(batch, tokens, dim)
        return self.proj_drop(self.proj(mixed)), weights


class Mlp(nn.Module):
    """x (B, T, D) → (B, T, D): Linear D → ratio·D, GELU, Linear back; applied to each token alone."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero a residual branch for a random ``p`` share of the samples.

    x (B, ...) → (B, ...). Kept samples are scaled by 1/(1-p) so the expected value is
    unchanged; in eval mode (or with p = 0) x passes through untouched.
    """
    if not training or p == 0.0:
        return x
    keep = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype).bernoulli_(1 - p)
    return x * keep / (1 - p)


class DropPath(nn.Module):
    """Module form of :func:`drop_path`, one per residual branch."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Block(nn.Module):
    """One pre-norm encoder block: x (B, T, D) → (B, T, D), and attention weights if
    asked.

    Each branch reads a normalised copy of the stream and *adds* its result; the stream
    itself is never normalised inside the block, so the identity path runs clean from
    input to output (what makes deep pre-norm stacks train without warm-up tricks).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_dim: int,
        *,
        qkv_bias: bool = True,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, heads, qkv_bias, attn_dropout, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, mlp_dim, dropout)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        mixed, weights = self.attn(self.norm1(x), return_weights)
        x = x + self.drop_path(mixed)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x, weights


class VisionTransformer(nn.Module):
    """images (B, C, H, W) float → logits (B, classes). See the module docstring and :class:`ViTConfig`."""

    def __init__(self, config: ViTConfig | None = None):
        super().__init__()
        self.config = c = config or ViTConfig()
        self.patch_embed = PatchEmbed(c.image_size, c.patch_size, c.in_chans, c.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim)) if c.has_cls else None
        position_rows = c.num_patches + int(c.has_cls and c.cls_position)
        self.pos_embed = nn.Parameter(torch.zeros(1, position_rows, c.dim))
        self.pos_drop = nn.Dropout(c.dropout)
        # Stochastic depth grows with depth: early blocks are kept almost always (as in DeiT).
        rates = [c.drop_path * i / max(c.depth - 1, 1) for i in range(c.depth)]
        self.blocks = nn.ModuleList(
            Block(c.dim, c.heads, c.mlp_dim, qkv_bias=c.qkv_bias, dropout=c.dropout, attn_dropout=c.attn_dropout,
                  drop_path=rate, norm_eps=c.norm_eps)
            for rate in rates)
        self.norm = nn.LayerNorm(c.dim, eps=c.norm_eps)
        self.head = nn.Linear(c.dim, c.num_classes)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Small truncated-normal weights (std 0.02) and zero biases, as in the reference code."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def position_rows(
        self, grid: tuple[int, int]
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The learned positions for a (gh, gw) grid of patches: (the CLS token's row
        (1, 1, D), or None when it has none, and the patch rows (1, gh·gw, D)).

        For the model's own grid these are the table's rows as they are. For any other
        grid the patch rows, read as a side × side picture with D channels, are resized
        bicubically — how DINO feeds its smaller local crops, and how a ViT is
        fine-tuned at a new resolution.
        """
        c = self.config
        side = c.image_size // c.patch_size
        cls_row = self.pos_embed[:, :1] if (c.has_cls and c.cls_position) else None
        patch_rows = self.pos_embed[:, -side * side :]
        if tuple(grid) == (side, side):
            return cls_row, patch_rows
        # (1, D, side, side)
        picture = patch_rows.reshape(1, side, side, c.dim).permute(0, 3, 1, 2)
        resized = F.interpolate(
            picture.float(), size=tuple(grid), mode="bicubic", align_corners=False
        )
        return cls_row, resized.to(patch_rows.dtype).permute(0, 2, 3, 1).reshape(
            1, grid[0] * grid[1], c.dim
        )

    def embed(self, images: torch.Tensor, any_size: bool = False) -> torch.Tensor:
        """images (B, C, H, W) → tokens (B, T, D): patches, CLS token, positions,
        dropout.

        ``any_size`` accepts other sizes (multiples of the patch size), with resized
        positions.
        """
        x = self.patch_embed(images, any_size)  # (B, N, D)
        grid = (
            images.shape[-2] // self.config.patch_size,
            images.shape[-1] // self.config.patch_size,
        )
        cls_row, patch_rows = self.position_rows(grid)
        x = x + patch_rows  # every patch: its position
        if self.cls_token is not None:
            # the CLS token's own row, if any
            cls = (self.cls_token if cls_row is None else self.cls_token + cls_row)
            x = torch.cat([cls.expand(len(x), -1, -1), x], dim=1)  # (B, N + 1, D)
        return self.pos_drop(x)

    def forward_features(self, images: torch.Tensor, return_weights: bool = False, any_size: bool = False):
        """images → final-normalised tokens (B, T, D), and the list of each block's weights (B, heads, T, T).

        ``any_size``: images of another size than the config's (see :meth:`embed`).
        """
        x = self.embed(images, any_size=any_size)
        all_weights = []
        for block in self.blocks:
            x, weights = block(x, return_weights)
            all_weights.append(weights)
        return self.norm(x), (all_weights if return_weights else None)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T, D) → one vector per image (B, D): the CLS row, or the mean of the patch rows."""
        return tokens[:, 0] if self.config.has_cls else tokens.mean(dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens, _ = self.forward_features(images)
        return self.head(self.pool(tokens))

    @torch.no_grad()
    def attention_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Each block's attention weights (B, heads, T, T), computed in eval mode; rows add up to 1."""
        was_training = self.training
        self.eval()
        try:
            return self.forward_features(images, return_weights=True)[1]
        finally:
            self.train(was_training)
