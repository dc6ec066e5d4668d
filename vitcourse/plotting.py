"""The book's figure style, its layout helpers, and the architecture diagrams the chapters draw.

``use_book_style()`` sets matplotlib's defaults once per notebook: type large enough to read
when a figure is scaled to the book's column (672 px at a 1280 px window), a default size
that fits that column, and a resolution that stays sharp. Text size as rendered is
``points × column px / (72 × figure inches)``, so 10-point type on a figure up to 7.5 inches wide
shows at more than 12 px, whatever the dpi.

One layout mechanism, in the style, lays out every figure; a chapter never calls ``tight_layout``:

* constrained layout is on in the rcParams (``figure.constrained_layout.use``), so titles, labels,
  colour bars and legends placed outside the axes get their room when the figure is drawn;
* a figure hook (``figure.hooks``) makes each pyplot figure raise any text that would show below
  ``MIN_TEXT_PX`` (12 px) at the column width to that size just before it is drawn, before the
  layout runs. A wide grid of small panels therefore never ships 7-pixel labels; its author sees
  the larger type and can shorten them. ``tight_layout`` on such a figure does nothing: the
  constrained layout already ran, and mixing the two engines warns or fails.

Helpers for what figures get wrong: :func:`show_maps` draws a row or grid of maps on one shared
colour scale with one colour bar (a 0.06 peak is not drawn as bright as a 0.33 one),
:func:`diverging_norm` centres a signed map's colours on 0, and :func:`legend_outside` puts a
legend beside or below the data instead of on it.

The diagram functions draw with plain matplotlib patches, so every diagram lives in this
repository as code: the ViT pipeline, post-norm and pre-norm encoder blocks, DeiT's tokens,
and Swin's stages and shifted windows.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colorbar import Colorbar
from matplotlib.colors import CenteredNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.legend import Legend
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, MaxNLocator

BOOK_STYLE = {
    "figure.figsize": (7.5, 4.0),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "font.size": 10.5,
    "axes.titlesize": 11,
    "axes.labelsize": 10.5,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "figure.titlesize": 12,
    "image.cmap": "viridis",
    "figure.constrained_layout.use": True,  # the one layout mechanism: no chapter calls tight_layout
}

DIVERGING_CMAP = "RdBu_r"  # signed values: blue below 0, white at 0, red above

COLOURS = {"input": "#dbe9f6", "embed": "#fde0c5", "block": "#d9f0d3", "norm": "#f2f2f2",
           "head": "#e8d9f0", "token": "#fff2b3", "dist": "#f7c6c7"}


COLUMN_PX = 672     # the book's text column at a 1280 px browser window (measured by tests/book/test_browser.py)
MIN_TEXT_PX = 12.0  # the smallest type (font size in CSS px) a figure may show at that width


def rendered_px(points: float, figure_inches: float, dpi: float) -> float:
    """Pixel height of ``points``-point type once a figure ``figure_inches`` wide, rendered at
    ``dpi``, is shown in the column (a wider image is scaled down to the column; a narrower one
    is shown at its own size)."""
    natural_px = figure_inches * dpi
    return points / 72 * dpi * min(1.0, COLUMN_PX / natural_px)


class _BookFigure(Figure):
    """A Figure that raises too-small text to :data:`MIN_TEXT_PX` before it draws (and before
    its layout engine runs, so the layout makes room for the larger type)."""

    def draw(self, renderer):
        enlarge_small_text(self)
        super().draw(renderer)

    def tight_layout(self, *args, **kwargs):
        """Lay the figure out with ``tight_layout`` only where the book's constrained layout is off
        (a figure made with ``layout="none"``); under the book's style it does nothing, since the
        constrained layout runs at every draw and switching engines warns or fails."""
        engine = self.get_layout_engine()
        if isinstance(engine, ConstrainedLayoutEngine):
            return
        super().tight_layout(*args, **kwargs)


def enlarge_small_text(fig: Figure) -> int:
    """Raise every visible text of ``fig`` that would show below :data:`MIN_TEXT_PX` at the
    column width to exactly that size; return how many were raised."""
    width = fig.get_size_inches()[0]
    minimum = MIN_TEXT_PX / rendered_px(1.0, width, fig.dpi)  # points
    raised = 0
    for ax in fig.axes:  # tick labels are made at draw time: size them through tick_params
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            labels = [t for t in axis.get_ticklabels(which="both") if t.get_visible() and t.get_text()]
            if any(t.get_fontsize() < minimum - 1e-6 for t in labels):
                ax.tick_params(axis=name, which="both", labelsize=minimum)
                raised += 1
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text().strip() and text.get_fontsize() < minimum - 1e-6:
            text.set_fontsize(minimum)
            raised += 1
    return raised


def legible_type(fig: Figure) -> None:
    """The ``figure.hooks`` entry: make ``fig`` keep its text legible at the column width."""
    if type(fig) is Figure:
        fig.__class__ = _BookFigure


def use_book_style() -> None:
    """Apply :data:`BOOK_STYLE` to matplotlib's defaults (idempotent), with the legibility hook."""
    mpl.rcParams.update(BOOK_STYLE)
    hooks = [hook for hook in mpl.rcParams["figure.hooks"] if not hook.endswith(":legible_type")]
    mpl.rcParams["figure.hooks"] = hooks + ["vitcourse.plotting:legible_type"]


def shared_norm(maps, *, vmin: float | None = None, vmax: float | None = None) -> Normalize:
    """One colour scale for several maps: from the smallest to the largest value of all of them
    (``vmin``/``vmax`` fix either end, e.g. ``vmin=0`` for attention weights)."""
    values = _finite_values(maps)
    low = float(values.min()) if vmin is None else float(vmin)
    high = float(values.max()) if vmax is None else float(vmax)
    if not high > low:
        raise ValueError(f"the maps span no range ({low} to {high}): pass vmin/vmax that differ, "
                         "or draw a constant map without a colour scale")
    return Normalize(vmin=low, vmax=high)


def diverging_norm(maps, *, halfrange: float | None = None) -> CenteredNorm:
    """A colour scale centred on 0 for signed maps: 0 is the diverging map's middle colour and
    +h and -h are equally strong, h being the largest |value| of all ``maps`` unless given."""
    if halfrange is None:
        halfrange = float(np.abs(_finite_values(maps)).max())
    if not halfrange > 0:
        raise ValueError(f"a diverging scale needs a positive half-range, got {halfrange}: the maps "
                         "are all 0 (or pass halfrange=...)")
    return CenteredNorm(vcenter=0.0, halfrange=halfrange)


def _finite_values(maps) -> np.ndarray:
    """Every finite number in ``maps`` (one array, or a sequence of arrays of any shapes), flat."""
    arrays = [np.asarray(m, dtype=float).ravel() for m in (maps if _is_sequence_of_arrays(maps) else [maps])]
    values = np.concatenate(arrays) if arrays else np.array([])
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("no finite values to scale: the maps are empty or all NaN/inf")
    return values


def _is_sequence_of_arrays(maps) -> bool:
    return isinstance(maps, (list, tuple)) and all(np.ndim(m) >= 1 for m in maps)


def show_maps(axes, maps: Sequence, *, label: str, titles: Sequence[str] | None = None,
              diverging: bool = False, cmap: str | None = None, vmin: float | None = None,
              vmax: float | None = None, under=None, alpha: float = 0.6,
              colorbar_kw: dict | None = None) -> Colorbar:
    """Draw ``maps`` (each (H, W), or (H, W, 3) for an image without a scale) on ``axes`` (a row
    or grid, one axis per map) with ONE colour scale and ONE colour bar labelled ``label``.

    The scale spans every map (:func:`shared_norm`), or is centred on 0 with ``diverging=True``
    (:func:`diverging_norm`, drawn with :data:`DIVERGING_CMAP`). Ticks are hidden; ``titles``
    (one per map) head the panels. ``under`` (an image, (H, W) grey or (H, W, 3), the same size
    as the maps, or one image per map) is drawn beneath each map, the map over it at ``alpha``:
    attention heat maps over the picture they attend to. Returns the colour bar.
    """
    axes = list(np.ravel(axes))
    maps = list(maps)
    if len(axes) != len(maps):
        raise ValueError(f"{len(maps)} maps for {len(axes)} axes: give one axis per map "
                         "(e.g. plt.subplots(1, len(maps)))")
    if titles is not None and len(titles) != len(maps):
        raise ValueError(f"{len(titles)} titles for {len(maps)} maps: give one title per map")
    scalar = [m for m in maps if np.ndim(m) == 2]
    if not scalar:
        raise ValueError("no (H, W) map to put on a colour scale: every map is an RGB image")
    norm = diverging_norm(scalar) if diverging else shared_norm(scalar, vmin=vmin, vmax=vmax)
    cmap = cmap or (DIVERGING_CMAP if diverging else mpl.rcParams["image.cmap"])
    pictures = _pictures_under(under, len(maps))
    shown = None
    for i, (ax, m) in enumerate(zip(axes, maps)):
        if pictures[i] is not None:
            ax.imshow(pictures[i], cmap="gray" if np.ndim(pictures[i]) == 2 else None)
        over = {} if pictures[i] is None else {"alpha": alpha}
        image = ax.imshow(m, norm=norm, cmap=cmap, **over) if np.ndim(m) == 2 else ax.imshow(m)
        shown = image if np.ndim(m) == 2 else shown
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[i])
    fig = axes[0].get_figure()
    if isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
        fig.set_layout_engine("compressed")  # square maps: no gaps, a colour bar as tall as the maps
    return fig.colorbar(shown, ax=axes, label=label, **(colorbar_kw or {}))


def _pictures_under(under, count: int) -> list:
    """``under`` as one picture (or None) per map: a single image is repeated."""
    if under is None:
        return [None] * count
    if isinstance(under, (list, tuple)):
        if len(under) != count:
            raise ValueError(f"{len(under)} pictures under {count} maps: give one, or one per map")
        return list(under)
    return [under] * count


def legend_outside(ax, *, side: str = "right", **kwargs) -> Legend:
    """A legend of ``ax``'s lines beside its data (``side="right"``) or under the whole figure
    (``side="below"``: the figure's one legend, below every panel and its axis labels), never
    on the data; the book's constrained layout makes room for it. ``kwargs`` go to ``legend``."""
    if side == "right":
        return ax.legend(**{"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0,
                            **kwargs})
    if side == "below":
        handles, labels = ax.get_legend_handles_labels()
        return ax.get_figure().legend(handles, labels, **{"loc": "outside lower center",
                                                          "ncols": min(2, len(labels)) or 1, **kwargs})
    raise ValueError(f"side={side!r}: use 'right' or 'below'")


def plot_history(histories: dict, title: str, *, figsize=(10, 3.4)) -> Figure:
    """Loss (left) and test accuracy (right) per epoch of one or more training runs.

    ``histories`` maps a run's name to its history (a DataFrame indexed by epoch with
    ``train_loss``, ``test_loss`` and ``test_acc``, as ``CifarTrainer.history()`` returns it);
    a single run may be named ``""``, and its legend then says only train and test. Each run
    has one colour in both panels: training loss solid, test loss dashed; one legend under the
    panels names them. The training loss is on smoothed
    targets, as the CIFAR recipe trains. Accuracies, stored as fractions, read in % on the axis,
    as the book writes them.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=figsize)
    for run, (name, history) in enumerate(histories.items()):
        prefix, colour = (f"{name}: " if name else ""), f"C{run}"  # one colour per run
        left.plot(history.index, history["train_loss"], "o-", color=colour,
                  label=f"{prefix}train (smoothed targets)")
        left.plot(history.index, history["test_loss"], "s--", color=colour, label=f"{prefix}test")
        right.plot(history.index, history["test_acc"], "o-", color=colour, label=name or None)
    left.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    right.set(xlabel="epoch", ylabel="accuracy", title="test accuracy")
    right.yaxis.set_major_formatter(percent_formatter())
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
    legend_outside(left, side="below")  # one legend under both panels: each run keeps one colour
    fig.suptitle(title)
    return fig


def percent_formatter() -> FuncFormatter:
    """Tick labels for an axis of fractions (accuracies) in %, as the book writes them:
    0.55 → "55 %", 0.325 → "32.5 %". A new formatter per axis (matplotlib ties one to its axis)."""
    return FuncFormatter(lambda value, _: f"{round(100 * value, 4):g} %")


# -- drawing helpers ----------------------------------------------------------------------------

def _box(ax, x, y, w, h, text, colour, fontsize=10.5):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=colour, edgecolor="#333333", linewidth=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)


def _arrow(ax, start, end, color="#333333"):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12,
                                 color=color, linewidth=1.2))


def _canvas(width, height, xlim, ylim):
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


# -- the diagrams -------------------------------------------------------------------------------

def vit_pipeline(grid: int = 3):
    """The ViT of the paper, left to right: an image cut into ``grid`` × ``grid`` patches →
    one token per patch (numbered alike) and a CLS token on top, positions added → L encoder
    blocks → final LayerNorm → the CLS token's output → linear head → class scores."""
    if not 1 <= grid <= 3:
        raise ValueError(f"grid={grid}: the diagram draws 1 to 3 patches a side "
                         f"({grid * grid + 1} tokens would not fit the column legibly)")
    fig, ax = _canvas(9, 4.0, (0, 18), (0, 8))
    middle = 4.2                                 # the height every arrow of the pipeline runs at
    cell = 2.7 / grid                            # the image: a 2.7-unit square, cut into patches
    for r in range(grid):
        for c in range(grid):
            x, y = 0.3 + c * cell, middle + 1.35 - (r + 1) * cell
            ax.add_patch(Rectangle((x, y), cell, cell, facecolor=COLOURS["input"],
                                   edgecolor="#333333", gid="patch"))
            ax.text(x + cell / 2, y + cell / 2, str(r * grid + c + 1), ha="center",
                    va="center", fontsize=10)
    ax.text(1.65, middle - 1.6, f"image,\ncut into\n{grid * grid} patches", ha="center",
            va="top", fontsize=10)
    _arrow(ax, (3.1, middle), (3.6, middle))
    _box(ax, 3.6, middle - 0.7, 2.2, 1.4, "linear\nprojection", COLOURS["embed"])
    # the token sequence: the CLS token on top, then one token per patch, in the patches' order
    pitch, height, top = 0.66, 0.55, middle + 3.25
    for i in range(grid * grid + 1):
        y = top - i * pitch - height
        cls = i == 0
        ax.add_patch(Rectangle((6.6, y), 1.0, height, facecolor=COLOURS["token" if cls else "embed"],
                               edgecolor="#333333", gid="CLS token" if cls else "patch token"))
        ax.text(7.1, y + height / 2, "CLS" if cls else str(i), ha="center", va="center",
                fontsize=10)
    ax.text(6.5, top - height / 2, "learned", ha="right", va="center", fontsize=10)
    first_patch_token = top - pitch
    patch_tokens_middle = first_patch_token - (grid * grid * pitch - (pitch - height)) / 2
    _arrow(ax, (5.8, middle), (6.6, patch_tokens_middle))
    ax.text(7.1, top - (grid * grid + 1) * pitch, "+ position\ncodes", ha="center", va="top",
            fontsize=10)
    _arrow(ax, (7.7, middle), (8.3, middle))
    _box(ax, 8.3, middle - 2.0, 2.4, 4.0, "encoder\nblock\n× L", COLOURS["block"])
    _arrow(ax, (10.7, middle), (11.2, middle))
    _box(ax, 11.2, middle - 0.7, 1.7, 1.4, "Layer\nNorm", COLOURS["norm"])
    _arrow(ax, (12.9, middle), (13.4, middle))
    _box(ax, 13.4, middle - 0.7, 2.1, 1.4, "CLS\noutput →\nlinear", COLOURS["head"])
    _arrow(ax, (15.5, middle), (16.0, middle))
    ax.text(16.1, middle, "class\nscores", ha="left", va="center", fontsize=10.5)
    return fig


def encoder_blocks():
    """Post-norm (the first ViT, chapter 5) beside pre-norm (the paper's ViT, chapter 6)."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 5.2))
    specs = {
        "post-norm: LN(x + f(x))": ["MHA", "+", "LN", "MLP", "+", "LN"],
        "pre-norm: x + f(LN(x))": ["LN", "MHA", "+", "LN", "MLP", "+"],
    }
    for ax, (title, steps) in zip(axes, specs.items()):
        ax.set_xlim(0, 6)
        ax.set_ylim(-0.6, 9)
        ax.axis("off")
        ax.set_title(title, fontsize=11)
        y = 0.2
        ax.text(2.5, y - 0.5, "x in", ha="center", fontsize=10.5)
        centres = []
        for step in steps:
            y += 1.3
            if step == "+":
                ax.add_patch(plt.Circle((2.5, y + 0.3), 0.3, facecolor="white", edgecolor="#333333"))
                ax.text(2.5, y + 0.3, "+", ha="center", va="center", fontsize=12)
            else:
                colour = COLOURS["norm"] if step == "LN" else COLOURS["block"]
                _box(ax, 1.5, y, 2.0, 0.65, step, colour)
            centres.append(y)
        for a, b in zip([0.2] + centres[:-1], centres):
            _arrow(ax, (2.5, a + 0.05 if a == 0.2 else a + 0.65), (2.5, b))
        # the skips: from just below each sub-layer's first box, round the side, into its "+"
        adds = [i for i, step in enumerate(steps) if step == "+"]
        # post-norm's second skip starts after the LayerNorm that follows the first "+"
        second = adds[0] + (1 if steps[0] == "LN" else 2)
        branches = [1.0, centres[second] - 0.3]
        for branch, i in zip(branches, adds):
            join = centres[i] + 0.3
            ax.plot([2.5, 4.3, 4.3], [branch, branch, join], color="#1f77b4", linewidth=1.4)
            ax.plot([2.5], [branch], "o", color="#1f77b4", markersize=4)
            _arrow(ax, (4.3, join), (2.82, join), color="#1f77b4")
        ax.text(4.45, 2.2, "skip", color="#1f77b4", fontsize=10.5)
    return fig


def _tagged(ax, gid):
    """Name the patch just added to ``ax`` (a box or an arrow), so a test can find what it drew."""
    ax.patches[-1].set_gid(gid)


def deit_tokens(patches: int = 6):
    """DeiT's token layout: [CLS, DIST, patches…] through the blocks and two heads. In training
    each head meets its own target (the arrows up); at test time the two heads' outputs are
    averaged (the arrows into the box between them)."""
    fig, ax = _canvas(8.5, 4.2, (0, 17), (0, 8.4))
    labels = ["CLS", "DIST"] + [f"p{i + 1}" for i in range(patches)]
    colours = [COLOURS["token"], COLOURS["dist"]] + [COLOURS["embed"]] * patches
    centres = [1.55 + i * 1.4 for i in range(len(labels))]
    for centre, label, colour in zip(centres, labels, colours):
        ax.add_patch(Rectangle((centre - 0.55, 0.6), 1.1, 1.0, facecolor=colour, edgecolor="#333333"))
        ax.text(centre, 1.1, label, ha="center", va="center", fontsize=10)
    ax.text(1 + len(labels) * 1.4, 1.1, "… + positions", va="center", fontsize=10)
    _box(ax, 0.8, 2.5, 11.4, 1.6, "encoder blocks × L: every token attends to every other",
         COLOURS["block"])
    for centre in centres:
        _arrow(ax, (centre, 1.6), (centre, 2.5))
    # the heads: CLS's above the CLS token; DIST's at the right, fed from the DIST token's column
    heads = {"CLS head": 0.3, "DIST head": 9.0}
    for name, x in heads.items():
        _box(ax, x, 5.3, 2.5, 1.1, name, COLOURS["head"])
        _tagged(ax, name)
    _arrow(ax, (centres[0], 4.1), (centres[0], 5.3))
    ax.plot([centres[1], centres[1], 10.25], [4.1, 4.7, 4.7], color="#333333", linewidth=1.2)
    _arrow(ax, (10.25, 4.7), (10.25, 5.3))
    # training: each head against its own target
    targets = ("training:\ncross-entropy\nwith the labels", "training:\ndistillation loss\nwith the teacher")
    for x, target in zip(heads.values(), targets):
        _arrow(ax, (x + 1.25, 6.4), (x + 1.25, 6.9))
        ax.text(x + 1.25, 7.0, target, ha="center", va="bottom", fontsize=10)
    # test time: the two heads' outputs, averaged
    _box(ax, 3.6, 5.15, 4.6, 1.4, "at test time:\nthe mean of the\ntwo heads' outputs", COLOURS["norm"],
         fontsize=10)
    _tagged(ax, "test-time mean")
    _arrow(ax, (2.8, 5.85), (3.6, 5.85))
    _tagged(ax, "CLS head → mean")
    _arrow(ax, (9.0, 5.85), (8.2, 5.85))
    _tagged(ax, "DIST head → mean")
    return fig


def _window_edges(side: int, window: int, shift: int) -> list[int]:
    """Where the window borders of a ``side`` × ``side`` map fall, in tokens from one edge: every
    ``window`` tokens, moved back by ``shift`` (the shifted windows), the map's edges included."""
    return sorted({0, side, *(k for k in range(-shift, side, window) if 0 < k < side)})


def _window_grid(ax, x0, y0, side, cell, edges, *, colour, highlight=None, earlier=None):
    """A ``side`` × ``side`` token map with window borders at ``edges`` (solid, in ``colour``),
    the window ``highlight`` ((row, column) of edges) shaded, and the ``earlier`` block's borders
    dashed grey underneath."""
    for r in range(side):
        for c in range(side):
            ax.add_patch(Rectangle((x0 + c * cell, y0 + r * cell), cell, cell, facecolor=COLOURS["input"],
                                   edgecolor="#bbbbbb", linewidth=0.6))
    if highlight is not None:
        (r0, r1), (c0, c1) = highlight
        ax.add_patch(Rectangle((x0 + c0 * cell, y0 + (side - r1) * cell), (c1 - c0) * cell,
                               (r1 - r0) * cell, facecolor=colour, alpha=0.25, linewidth=0))
    for k in earlier or []:
        ax.plot([x0 + k * cell] * 2, [y0, y0 + side * cell], color="#555555", linewidth=1.2, ls=(0, (3, 2)))
        ax.plot([x0, x0 + side * cell], [y0 + k * cell] * 2, color="#555555", linewidth=1.2, ls=(0, (3, 2)))
    for k in edges:
        ax.plot([x0 + k * cell] * 2, [y0, y0 + side * cell], color=colour, linewidth=2.2)
        ax.plot([x0, x0 + side * cell], [y0 + k * cell] * 2, color=colour, linewidth=2.2)


def swin_windows(side: int = 8, window: int = 4):
    """Regular windows (block ℓ) beside shifted windows (block ℓ + 1) on a ``side`` × ``side``
    token map: attention stays inside each window; the shifted grid's borders are drawn over the
    regular grid's (dashed), so one shifted window visibly takes tokens from several regular ones."""
    if side % window or side < 2 * window:
        raise ValueError(f"side={side}, window={window}: the map must hold at least 2 × 2 whole "
                         "windows (side a multiple of window, at least twice it)")
    shift = window // 2
    regular, shifted = _window_edges(side, window, 0), _window_edges(side, window, shift)
    sizes = sorted({b - a for a, b in zip(shifted, shifted[1:])})
    fig, ax = _canvas(8, 4.2, (-0.5, 2 * side + 3.5), (-2.8, side + 0.5))
    _window_grid(ax, 0, 0, side, 1, regular, colour="#1f77b4", highlight=((0, window), (0, window)))
    _window_grid(ax, side + 3, 0, side, 1, shifted, colour="#d62728", earlier=regular,
                 highlight=((shift, shift + window), (shift, shift + window)))
    count = (len(regular) - 1) ** 2
    ax.text(side / 2, -0.4, f"block ℓ: regular windows\n{count} windows of {window} × {window} tokens",
            ha="center", va="top", fontsize=10.5, color="#1f77b4")
    sides = " or ".join(map(str, sizes))
    ax.text(side + 3 + side / 2, -0.4,
            f"block ℓ + 1: windows shifted by {shift}\n"
            f"{(len(shifted) - 1) ** 2} windows, {sides} tokens a side\n(dashed: block ℓ's borders)",
            ha="center", va="top", fontsize=10.5, color="#d62728")
    return fig


def swin_stages(image: int = 224, dims=(96, 192, 384, 768), patch: int = 4):
    """Swin's hierarchy, to scale: each stage's token map is a square whose side is proportional to
    the map's side (``image / patch``, then halved by each patch merging), labelled with its size
    (H/4 × W/4, …) and width (C, 2C, …) — the width doubling as the side halves."""
    sides = [image // patch // 2 ** stage for stage in range(len(dims))]
    if any(s < 1 for s in sides) or image % (patch * 2 ** (len(dims) - 1)):
        raise ValueError(f"a {image}-pixel image in patches of {patch} does not halve "
                         f"{len(dims) - 1} times into whole token maps")
    if any(after != 2 * before for before, after in zip(dims, dims[1:])):
        raise ValueError(f"dims={tuple(dims)}: Swin's patch merging doubles the width from stage to "
                         "stage (e.g. 96, 192, 384, 768)")
    fig, ax = _canvas(9, 4.4, (0, 19), (-4.0, 5.2))
    unit = 4.6 / sides[0]                       # drawing units per token of the map's side
    x = 0.3
    for stage, (side, dim) in enumerate(zip(sides, dims)):
        drawn = side * unit
        column = max(drawn, 3.3)                # room for the labels under the smallest maps
        left = x + (column - drawn) / 2
        ax.add_patch(Rectangle((left, 0.2), drawn, drawn, facecolor=COLOURS["block"], edgecolor="#333333",
                               gid=f"stage {stage + 1} map"))
        factor = patch * 2 ** stage
        width = "C" if stage == 0 else f"{dim // dims[0]}C"
        ax.text(x + column / 2, -0.1, f"stage {stage + 1}\nH/{factor} × W/{factor} × {width}\n"
                f"{side} × {side} × {dim}", ha="center", va="top", fontsize=10)
        if stage < len(dims) - 1:
            _arrow(ax, (x + column + 0.1, 0.7), (x + column + 1.1, 0.7))
            ax.text(x + column + 0.6, 0.95, "merge", ha="center", va="bottom", fontsize=10)
        x += column + 1.2
    ax.text(9.5, -2.2, "squares to scale: side ∝ tokens a side · labels: tokens × tokens × width\n"
            f"(H × W: the image in pixels; C = {dims[0]}) · "
            "each merge: half the side, ¼ of the tokens, twice the width\n"
            "in each stage, Swin blocks in pairs: regular windows, then shifted windows",
            ha="center", va="top", fontsize=10)
    return fig
