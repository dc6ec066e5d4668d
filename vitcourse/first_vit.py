"""The course's first Vision Transformer, and the small CNN it races, in PyTorch.

The ViT follows the course's first lesson exactly (42,506 parameters):

    patches (B, 49, 16)
      → Linear 16→64                       patch embedding
      → + learned position table (49, 64)  an nn.Parameter: it trains
      → one post-norm encoder layer:       x = LN(x + MHSA(x));  x = LN(x + FF(x))
            MHSA: 4 heads × 16, one fused qkv Linear 64→192, output Linear 64→64
            FF:   Linear 64→128, ReLU, Linear 128→64
      → mean over the 49 tokens            (B, 64)
      → Linear 64→64, ReLU, Dropout(0.3), Linear 64→10   logits (B, 10)

The forward pass returns **logits**; ``F.cross_entropy`` applies the softmax itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from vitcourse.vit import attend


@dataclass(frozen=True)
class FirstViTConfig:
    """Sizes of the first ViT; the defaults are the course's."""

    image_size: int = 28
    patch_size: int = 4
    channels: int = 1
    width: int = 64
    heads: int = 4
    mlp_width: int = 128
    head_width: int = 64
    classes: int = 10
    dropout: float = 0.3

    def __post_init__(self):
        if self.image_size % self.patch_size:
            raise ValueError(f"patch_size={self.patch_size} must divide image_size={self.image_size}")
        if self.width % self.heads:
            raise ValueError(f"width={self.width} must split evenly into heads={self.heads}")

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def patch_dim(self) -> int:
        return self.patch_size * self.patch_size * self.channels

    @property
    def patch_shape(self) -> tuple[int, int]:
        """(patches per image, numbers per patch): one image's input to the ViT."""
        return self.n_patches, self.patch_dim


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused query/key/value projection.

    x (B, L, D) → (B, L, D). One Linear D → 3D makes every head's queries, keys and
    values at once (one matrix product instead of three); `attend` mixes the values.
    With return_weights=True it also returns the weights (B, H, L, L), for pictures.
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        batch, length, width = x.shape
        # (B, L, 3D) → three (B, H, L, d) views: every head's queries, keys and values
        qkv = self.qkv(x).view(batch, length, 3, self.heads, width // self.heads)
        q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))
        mixed, weights = attend(q, k, v, return_weights=return_weights)
        mixed = mixed.transpose(1, 2).reshape(batch, length, width)  # heads joined
        return self.proj(mixed), weights


class PostNormEncoderLayer(nn.Module):
    """x (B, L, D) → (B, L, D): attention, add & norm; feed-forward, add & norm."""

    def __init__(self, width: int, heads: int, mlp_width: int):
        super().__init__()
        self.attention = SelfAttention(width, heads)
        self.norm1 = nn.LayerNorm(width)
        self.feed_forward = nn.Sequential(
            nn.Linear(width, mlp_width), nn.ReLU(), nn.Linear(mlp_width, width)
        )
        self.norm2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        mixed, weights = self.attention(x, return_weights)
        x = self.norm1(x + mixed)
        x = self.norm2(x + self.feed_forward(x))
        return x, weights


class FirstViT(nn.Module):
    """The first ViT: patches (B, 49, 16) → logits (B, 10). See the module docstring."""

    def __init__(self, config: FirstViTConfig | None = None):
        super().__init__()
        self.config = config = config or FirstViTConfig()
        self.embed = nn.Linear(config.patch_dim, config.width)  # the patch embedding
        table = torch.randn(config.n_patches, config.width) * 0.02
        self.positions = nn.Parameter(table)  # a Parameter: the optimiser trains it
        self.encoder = PostNormEncoderLayer(
            config.width, config.heads, config.mlp_width
        )
        self.head = nn.Sequential(
            nn.Linear(config.width, config.head_width), nn.ReLU(),
            nn.Dropout(config.dropout), nn.Linear(config.head_width, config.classes),
        )

    def forward(self, patches: torch.Tensor, return_attention: bool = False):
        """patches (B, L, P·P) → logits (B, classes); with return_attention=True also
        the attention weights (B, H, L, L)."""
        if patches.dim() != 3 or tuple(patches.shape[1:]) != self.config.patch_shape:
            raise ValueError(
                f"FirstViT wants patches of shape (B, {self.config.n_patches}, "
                f"{self.config.patch_dim}), got "
                f"{tuple(patches.shape)}; cut (B, {self.config.image_size}, "
                f"{self.config.image_size}) images with "
                f"vitcourse.patches.extract_patches(images, {self.config.patch_size})."
            )
        x = self.embed(patches) + self.positions
        x, weights = self.encoder(x, return_attention)
        logits = self.head(x.mean(dim=1))
        return (logits, weights) if return_attention else logits

    def attention_maps(self, patches: torch.Tensor) -> torch.Tensor:
        """Attention weights (B, H, L, L) of the encoder layer, in eval mode and without
        gradients; rows add up to 1."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self(patches, return_attention=True)[1]
        finally:
            self.train(was_training)


class FashionCNN(nn.Module):
    """The CNN rival: images (B, 1, 28, 28) → logits (B, 10).

    Two rounds of 3×3 convolution, ReLU and 2×2 max-pooling (28 → 26 → 13 → 11 → 5),
    then flatten and two linear layers.
    """

    def __init__(self, channels: tuple[int, int] = (32, 64), hidden: int = 64,
                 classes: int = 10):
        super().__init__()
        first, second = channels
        self.features = nn.Sequential(  # (B, 1, 28, 28) → (B, second, 5, 5)
            nn.Conv2d(1, first, kernel_size=3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(first, second, kernel_size=3), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(second * 5 * 5, hidden), nn.ReLU(),
            nn.Linear(hidden, classes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1:] != (1, 28, 28):
            raise ValueError(
                "FashionCNN wants images of shape (B, 1, 28, 28), got "
                f"{tuple(images.shape)}; add the channel axis with images.unsqueeze(1)."
            )
        return self.classifier(self.features(images))


def race_cnn(classes: int = 10) -> FashionCNN:
    """The CNN rival sized to the first ViT's parameter budget, for a fair race.

    :class:`FashionCNN`'s layout with half its channels (16, 32) and a 48-wide dense layer:
    43,738 parameters against the ViT's 42,506 (+2.9 %), where the default FashionCNN has
    121,930 (2.9×).
    """
    return FashionCNN(channels=(16, 32), hidden=48, classes=classes)


def has_plateaued(accuracies, last: int = 3, tolerance: float = 0.01) -> bool:
    """Whether a validation curve has levelled off: the best of its ``last`` values beats the
    best before them by less than ``tolerance`` (a fraction: 0.01 is one point).

    >>> has_plateaued([0.40, 0.64, 0.73, 0.80, 0.805, 0.80, 0.808])
    True
    >>> has_plateaued([0.40, 0.64, 0.73, 0.76, 0.78])
    False
    """
    values = [float(a) for a in accuracies]
    if last < 1 or len(values) <= last:
        raise ValueError(f"need more than last={last} values to judge a plateau, got {len(values)}")
    return max(values[-last:]) - max(values[:-last]) < tolerance


def parameter_table(model: nn.Module) -> pd.DataFrame:
    """One row per layer that owns parameters: its name, type, parameter shapes and count.

    A parameter that a model holds itself rather than through a layer (the first ViT's
    position table, ``positions``) gets a row of its own, of type ``Parameter``. The
    ``params`` column sums to the model's trainable parameter count.
    """
    rows = []

    def row(layer: str, kind: str, own: list[nn.Parameter]) -> dict:
        return {"layer": layer, "type": kind,
                "shapes": " + ".join("×".join(map(str, p.shape)) for p in own),
                "params": sum(p.numel() for p in own)}

    for name, module in model.named_modules():
        own = [(key, p) for key, p in module.named_parameters(recurse=False)
               if p.requires_grad]
        if own and next(module.children(), None) is None:  # a layer: one row
            rows.append(row(name, type(module).__name__, [p for _, p in own]))
        else:  # a container's own parameters: one row each
            rows += [row(f"{name}.{key}" if name else key, "Parameter", [p])
                     for key, p in own]
    return pd.DataFrame(rows).set_index("layer")


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
