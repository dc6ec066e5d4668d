"""What a ViT looks at: the CLS token's attention, attention rollout, and DINO's 60 %-mass display.

    cls_attention_map(model, image)     per head, how much the CLS token of the LAST block
                                        reads from each patch                 (heads, H/P, W/P)
    attention_rollout(weights)          Abnar & Zuidema (2020): follow the attention through
                                        every layer, residual included        (B, T, T)
    cls_rollout_map(model, image)       the CLS row of the rollout, on the patch grid (H/P, W/P)
    keep_top_mass(maps, mass=0.6)       the smallest set of patches holding 60 % of a map's mass,
                                        as DINO draws its maps                bool, same shape
    cls_attention_maps(model, images)   cls_attention_map for a batch        (B, heads, H/P, W/P)
    object_share(maps, masks)           the share of each map's mass on an object, given the
                                        object's pixel mask                   (...,)
    overlay / show_maps / map_colorbar  draw maps stretched over the image, in grey (matplotlib)

Every map is computed in eval mode, without gradients, and returned on the CPU.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from vitcourse.vit import VisionTransformer

HEAD_FUSIONS = ("mean", "max", "min")


def _check_image(model: VisionTransformer, image: torch.Tensor, who: str) -> torch.Tensor:
    """image (C, H, W) or (1, C, H, W) → (1, C, H, W) on the model's device, or a ValueError saying why not."""
    if not isinstance(model, VisionTransformer):
        raise ValueError(f"{who} needs a vitcourse.vit.VisionTransformer, got {type(model).__name__}")
    if not model.config.has_cls:
        raise ValueError(f"{who} reads the CLS token's attention, but this model was built with pool='mean' "
                         f"and has no CLS token; build it with ViTConfig(pool='cls'), or look at a patch's "
                         f"row of model.attention_maps(images) instead")
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{who} wants the image as a torch.Tensor of shape (C, H, W), got {type(image).__name__}")
    c = model.config
    want = (c.in_chans, c.image_size, c.image_size)
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or tuple(image.shape) != want:
        hint = ""
        if image.dim() == 4:
            hint = " — one image at a time: pass images[i], not a batch"
        elif image.dim() == 3 and image.shape[-1] == c.in_chans and image.shape[0] != c.in_chans:
            hint = " — channels-last? use image.permute(2, 0, 1)"
        raise ValueError(f"{who} wants one image of shape {want} (or (1, {', '.join(map(str, want))})), "
                         f"as the model was built for, got {tuple(image.shape)}{hint}")
    if not torch.is_floating_point(image):
        raise ValueError(f"{who} wants a float image, normalised as the model was trained on; got {image.dtype}")
    return image[None].to(next(model.parameters()).device)


def cls_attention_map(model: VisionTransformer, image: torch.Tensor) -> torch.Tensor:
    """Per head, the CLS token's attention to every patch in the model's last block.

    Args:
        model: a :class:`~vitcourse.vit.VisionTransformer` with a CLS token
        (``pool="cls"``).
        image: one image (C, H, W) or (1, C, H, W), preprocessed as the model expects.

    Returns:
        (heads, H/P, W/P) float tensor on the CPU. Row 0 of each head's softmax covers
        all T tokens, the CLS token itself included, so each head's map sums to at most
        1; what is missing is the CLS token's attention to itself.

    Raises:
        ValueError: for a model without a CLS token, or an image of the wrong shape.
    """
    batch = _check_image(model, image, "cls_attention_map")
    last = model.attention_maps(batch)[-1][0]  # (heads, T, T)
    side = model.config.image_size // model.config.patch_size
    # the CLS row, patch columns only
    return (last[:, 0, 1:].reshape(-1, side, side).float().cpu())


@torch.no_grad()
def cls_attention_maps(model: VisionTransformer, images: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """:func:`cls_attention_map` for a batch: images (B, C, H, W) → (B, heads, H/P, W/P) on the CPU.

    The model runs in eval mode (its mode is restored afterwards), ``batch_size`` images at a time.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"cls_attention_maps wants images (B, C, H, W), got {got}")
    _check_image(model, images[0], "cls_attention_maps")
    device = next(model.parameters()).device
    side = model.config.image_size // model.config.patch_size
    was_training = model.training
    model.eval()
    try:
        maps = [model.attention_maps(chunk.to(device))[-1][:, :, 0, 1:].float().cpu()
                for chunk in images.split(batch_size)]
    finally:
        model.train(was_training)
    maps = torch.cat(maps)
    return maps.reshape(len(maps), -1, side, side)


def patch_shares(model: VisionTransformer, images: torch.Tensor) -> torch.Tensor:
    """The last block's CLS attention, averaged over the heads, as shares of the patch grid:
    images (B, C, H, W) → (B, H/P, W/P), each map summing to 1 (the CLS token's own share left out)."""
    maps = cls_attention_maps(model, images).mean(1)
    return maps / maps.sum((1, 2), keepdim=True)


def object_share(maps: torch.Tensor, masks) -> torch.Tensor:
    """How much of each map's mass lies on the object: (..., h, w) maps and
    (..., H, W) object masks → (...,) shares in [0, 1].

    Each mask (1 on the object, 0 on the background, soft at the edge) is averaged
    over every patch, giving the patch's object fraction f; the share is Σ a·f / Σ a
    over the patches of the map a. A flat map scores the object's share of the
    image's area, the level of a map that ignores the object; a map entirely on
    object patches scores 1.
    """
    maps, masks = _maps_and_masks(maps, masks)  # float64, shapes checked
    (h, w), (height, width) = maps.shape[-2:], masks.shape[-2:]
    lead, patch = maps.shape[:-2], height // h
    flat_masks = masks.reshape(-1, 1, height, width)
    fraction = F.avg_pool2d(flat_masks, patch).reshape(*lead, h, w)
    total = maps.sum((-2, -1)).clamp_min(torch.finfo(torch.float64).tiny)
    return ((maps * fraction).sum((-2, -1)) / total).float()


def _maps_and_masks(maps, masks) -> tuple[torch.Tensor, torch.Tensor]:
    """What :func:`object_share` needs, as float64 tensors (the masks a writable copy), or a
    ValueError saying why not: non-negative maps, and masks with the maps' leading dimensions
    whose size is a whole number of patches."""
    maps = torch.as_tensor(maps).double()
    if torch.is_tensor(masks):
        masks = masks.detach().to(torch.float64, copy=True)
    else:
        masks = torch.from_numpy(np.array(masks, dtype=np.float64))
    (h, w), (height, width) = maps.shape[-2:], masks.shape[-2:]
    fits = height % h == 0 and width % w == 0 and height // h == width // w
    if maps.shape[:-2] != masks.shape[:-2] or not fits:
        raise ValueError(
            f"maps {tuple(maps.shape)} and masks {tuple(masks.shape)} must match in "
            "the leading dimensions, the masks' size being a whole number of patches"
        )
    if (maps < 0).any():
        raise ValueError("maps must be non-negative")
    return maps, masks


def _check_layers(weights_per_layer: Sequence[torch.Tensor], head_fusion: str) -> list[torch.Tensor]:
    """``weights_per_layer`` as a list, after checking what :func:`attention_rollout` needs."""
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
    layers = list(weights_per_layer)
    if not layers:
        raise ValueError("attention_rollout needs the weights of at least one layer")
    shape = layers[0].shape
    if layers[0].dim() not in (3, 4) or shape[-1] != shape[-2]:
        raise ValueError(f"each layer's weights must be (B, heads, T, T) or (heads, T, T), got {tuple(shape)}")
    for i, weights in enumerate(layers):
        if weights.shape != shape:
            raise ValueError(f"layer {i} has weights of shape {tuple(weights.shape)}, layer 0 "
                             f"{tuple(shape)}; all layers must match")
    return layers


def attention_rollout(
    weights_per_layer: Sequence[torch.Tensor],
    *,
    head_fusion: str = "mean",
    residual: bool = True,
) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): how much each output token draws on
    each input token.

    For every layer: fuse the heads (their mean, by default), add the identity for the
    residual connection (x + attention(x) passes the token itself on) and renormalise
    the rows, giving A_l = (W_l + I) / 2 for row-stochastic W_l. Then multiply through
    the layers, the later layer on the left: R = A_L · … · A_2 · A_1.

    Args:
        weights_per_layer: one (B, heads, T, T) or (heads, T, T) tensor per layer, first
            layer first, each row a softmax (as ``model.attention_maps`` returns them).
        head_fusion: ``"mean"`` (the paper), ``"max"`` or ``"min"`` over the heads.
        residual: add the identity before renormalising (the paper: yes).

    Returns:
        (B, T, T), or (T, T) for unbatched input: row i is how much output token i
        draws on each input token; rows add up to 1.
    """
    layers = _check_layers(weights_per_layer, head_fusion)
    shape = layers[0].shape
    unbatched = len(shape) == 3
    tokens = shape[-1]
    eye = torch.eye(tokens, dtype=torch.float64, device=layers[0].device)
    rollout = None
    for weights in layers:
        # (B, heads, T, T)
        w = weights.double()[None] if unbatched else weights.double()
        fused = getattr(w, head_fusion)(dim=1)  # (B, T, T); max/min: (values, indices)
        fused = fused if head_fusion == "mean" else fused.values
        if residual:
            fused = fused + eye
        fused = fused / fused.sum(dim=-1, keepdim=True)  # rows sum to 1 again
        # the later layer on the left
        rollout = fused if rollout is None else fused @ rollout
    rollout = rollout.to(layers[0].dtype)
    return rollout[0] if unbatched else rollout


def cls_rollout_map(model: VisionTransformer, image: torch.Tensor, *, head_fusion: str = "mean") -> torch.Tensor:
    """The CLS row of the attention rollout through all blocks, on the patch grid: (H/P, W/P) on the CPU.

    Like :func:`cls_attention_map` the patch part sums to at most 1 (the rest stays on the CLS token).
    """
    batch = _check_image(model, image, "cls_rollout_map")
    rollout = attention_rollout(model.attention_maps(batch), head_fusion=head_fusion)[0]   # (T, T)
    side = model.config.image_size // model.config.patch_size
    return rollout[0, 1:].reshape(side, side).float().cpu()


def _check_maps(maps: torch.Tensor, mass: float) -> None:
    """What :func:`keep_top_mass` needs: a share in (0, 1] and non-negative (..., h, w) maps."""
    if not 0.0 < mass <= 1.0:
        raise ValueError(f"mass must be in (0, 1], got {mass!r}")
    if not isinstance(maps, torch.Tensor) or maps.dim() < 2:
        got = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise ValueError(f"keep_top_mass wants maps of shape (..., h, w), got {got}")
    if (maps < 0).any():
        raise ValueError("attention maps must be non-negative (softmax weights); got negative entries")


def keep_top_mass(maps: torch.Tensor, mass: float = 0.6) -> torch.Tensor:
    """The smallest set of patches that holds ``mass`` of each map's total: DINO's
    display mask.

    Each map (the last two dimensions) is divided by its own sum, its patches taken
    from the largest down until their share reaches ``mass``. The CLS→patch part of a
    softmax row sums to less than 1; dividing by the sum makes "60 %" mean 60 % of the
    attention that went to patches.

    Args:
        maps: (..., h, w) non-negative attention maps, e.g. (heads, h, w).
        mass: the share to keep, in (0, 1].

    Returns:
        bool tensor of the same shape: True for the kept patches.
    """
    _check_maps(maps, mass)
    flat = maps.reshape(*maps.shape[:-2], -1).double()  # (..., h·w)
    tiny = torch.finfo(torch.float64).tiny
    share = flat / flat.sum(dim=-1, keepdim=True).clamp_min(tiny)
    ordered, order = share.sort(dim=-1, descending=True)
    before = ordered.cumsum(dim=-1) - ordered  # the larger patches' mass, not this one
    keep_sorted = before < mass - 1e-6  # still short of ``mass`` (float rounding aside)
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return keep.reshape(maps.shape)


def upsample_map(maps: torch.Tensor, size: int | tuple[int, int], mode: str = "nearest") -> torch.Tensor:
    """(..., h, w) → (..., H, W): stretch patch-grid maps to the image. ``nearest`` keeps the patches visible."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    return F.interpolate(flat, size=size, mode=mode, **kwargs).reshape(*lead, *size)


def _as_picture(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """(3, H, W) or (H, W, 3) in [0, 1] → (H, W, 3) numpy for imshow; min-max scaled if outside [0, 1]."""
    picture = torch.as_tensor(image).detach().float().cpu()
    if picture.dim() == 3 and picture.shape[0] in (1, 3) and picture.shape[-1] not in (1, 3):
        picture = picture.permute(1, 2, 0)
    if picture.min() < 0 or picture.max() > 1:                 # a normalised image: stretch for display
        picture = (picture - picture.min()) / (picture.max() - picture.min()).clamp_min(1e-12)
    return picture.squeeze(-1).numpy()


# Under an attention map the picture is drawn in grey, its brightness squeezed into GREY_UNDER,
# so that the map's colours mix with no colour of the picture's (a multicoloured background
# would tint them). A colour bar drawn with :func:`map_colorbar` lies over the middle of that
# range, at the map's opacity: its colours are those of a patch of the map over mid grey.
GREY_UNDER = (0.2, 0.8)


def _grey(picture: np.ndarray) -> np.ndarray:
    """(H, W, 3) or (H, W) in [0, 1] → (H, W) brightness squeezed into :data:`GREY_UNDER`."""
    light = picture @ np.array([0.299, 0.587, 0.114]) if picture.ndim == 3 else picture
    low, high = GREY_UNDER
    return low + (high - low) * light


def overlay(ax, image, attention: torch.Tensor | None = None, *, mask: torch.Tensor | None = None,
            alpha: float = 0.6, cmap: str = "inferno", title: str | None = None, mode: str = "nearest",
            vmin: float | None = None, vmax: float | None = None):
    """Draw ``image`` on ``ax`` with a patch-grid map (h, w) stretched over it, and/or a kept-patch mask.

    Under a map the image is drawn in grey (:data:`GREY_UNDER`), so the map keeps its own
    colours. The mask (h, w) of :func:`keep_top_mass` is drawn as DINO does: kept patches in
    full colour, the rest dimmed. ``vmin``/``vmax`` fix the map's colour scale (default: its
    own range); returns the map's image (for :func:`map_colorbar`), or None without a map.
    """
    picture = _as_picture(image)
    height, width = picture.shape[:2]
    if mask is not None:
        shade = upsample_map(mask.float(), (height, width)).numpy()
        shade = 0.25 + 0.75 * shade
        picture = picture * (shade[..., None] if picture.ndim == 3 else shade)
    if attention is not None:
        picture = _grey(picture)
    grey = picture.ndim == 2
    ax.imshow(picture, cmap="gray" if grey else None, vmin=0 if grey else None,
              vmax=1 if grey else None)
    shown = None
    if attention is not None:
        shown = ax.imshow(upsample_map(attention, (height, width), mode).numpy(), cmap=cmap,
                          alpha=alpha, vmin=vmin, vmax=vmax)
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return shown


def map_colorbar(fig, shown, ax, label: str, **kwargs):
    """A colour bar for maps drawn by :func:`overlay`: the maps' colours at their opacity, over
    the middle grey of :data:`GREY_UNDER`, as a patch of the map looks over the picture."""
    bar = fig.colorbar(shown, ax=ax, label=label, **kwargs)
    bar.ax.set_facecolor(str(sum(GREY_UNDER) / 2))
    return bar


def show_maps(image, maps: torch.Tensor, titles: Sequence[str] | None = None, *, masks: torch.Tensor | None = None,
              suptitle: str | None = None, alpha: float = 0.6, panel: float = 2.0):
    """One row: the image, then each map (k, h, w) over it (and below, each mask, if given). Returns the figure.

    All maps share one colour scale, from 0 to the largest weight of any map, shown by one
    colour bar beside the row of maps (the masks' row shows the picture's own colours):
    a brighter patch means more attention, whichever head it is in.
    """
    maps = maps.detach().cpu()
    count = len(maps)
    rows = 1 if masks is None else 2
    fig, axes = plt.subplots(rows, count + 1, figsize=(panel * (count + 1) + 0.8, (panel + 0.35) * rows + 0.4),
                             squeeze=False, layout="constrained")
    overlay(axes[0, 0], image, title="image")
    titles = list(titles) if titles is not None else [f"map {i + 1}" for i in range(count)]
    top = float(maps.max()) if count else 1.0
    shown = None
    for i in range(count):
        shown = overlay(axes[0, i + 1], image, maps[i], alpha=alpha, title=titles[i], vmin=0.0, vmax=top)
    if shown is not None:
        map_colorbar(fig, shown, list(axes[0]), "attention weight", shrink=0.9)
    if masks is not None:
        axes[1, 0].axis("off")
        for i in range(count):
            overlay(axes[1, i + 1], image, mask=masks[i], title="kept patches")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig
