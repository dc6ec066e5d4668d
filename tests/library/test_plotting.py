"""The book's figure style and its architecture diagrams (vitcourse.plotting)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from vitcourse import plotting  # noqa: E402

def _texts(fig):
    return [t for ax in fig.axes for t in ax.texts] + [ax.title for ax in fig.axes if ax.get_title()]


@pytest.mark.parametrize("draw, words", [
    (plotting.vit_pipeline, ["CLS", "linear\nprojection", "encoder\nblock\n× L", "Layer\nNorm",
                             "image,\ncut into\n9 patches", "9"]),
    (plotting.encoder_blocks, ["post-norm: LN(x + f(x))", "pre-norm: x + f(LN(x))", "MHA", "MLP"]),
    (plotting.deit_tokens, ["CLS", "DIST", "CLS head", "DIST head",
                            "at test time:\nthe mean of the\ntwo heads' outputs"]),
    (plotting.swin_windows, ["block ℓ: regular windows\n4 windows of 4 × 4 tokens",
                             "block ℓ + 1: windows shifted by 2\n9 windows, 2 or 4 tokens a side\n"
                             "(dashed: block ℓ's borders)"]),
    (plotting.swin_stages, ["stage 1\nH/4 × W/4 × C\n56 × 56 × 96", "stage 4\nH/32 × W/32 × 8C\n7 × 7 × 768"]),
])
def test_diagrams_say_what_they_show_in_legible_type(draw, words):
    plotting.use_book_style()
    fig = draw()
    try:
        shown = [t.get_text() for t in _texts(fig)]
        for word in words:
            assert word in shown, (word, shown)
        fig.canvas.draw()  # as the book shows it: the style's hook may raise small type
        width_in = fig.get_size_inches()[0]
        for text in _texts(fig):
            shown_px = plotting.rendered_px(text.get_fontsize(), width_in, fig.dpi)
            assert shown_px >= plotting.MIN_TEXT_PX - 1e-6, (
                f"{text.get_text()!r}: {shown_px:.1f} px at the column's width")
    finally:
        plt.close(fig)


def test_book_style_is_applied():
    plotting.use_book_style()
    assert matplotlib.rcParams["font.size"] >= 10 and matplotlib.rcParams["xtick.labelsize"] >= 10
    assert tuple(matplotlib.rcParams["figure.figsize"]) == plotting.BOOK_STYLE["figure.figsize"]


def test_book_style_raises_small_text_on_a_wide_figure_to_the_legible_minimum():
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    from vitcourse.plotting import MIN_TEXT_PX, rendered_px, use_book_style

    with mpl.rc_context():
        use_book_style()
        wide, axes = plt.subplots(1, 6, figsize=(14, 3))   # 14 in: 10 pt would show at 6.7 px
        for ax in axes:
            ax.set_title("a long panel title", fontsize=7)
            ax.plot([0, 1], [0, 1])
        narrow, ax = plt.subplots(figsize=(5, 3))          # 5 in at 110 dpi: shown at its own size
        ax.set_title("small but legible", fontsize=9)
        for fig in (wide, narrow):
            fig.canvas.draw()
        sizes = [t.get_fontsize() for t in wide.findobj(mpl.text.Text) if t.get_text().strip()]
        assert min(rendered_px(s, 14, wide.dpi) for s in sizes) >= MIN_TEXT_PX - 1e-6
        assert axes[0].title.get_fontsize() > 7
        assert ax.title.get_fontsize() == 9                 # 9 pt at 110 dpi is 13.75 px: untouched
        assert rendered_px(9, 5, narrow.dpi) > MIN_TEXT_PX
        plt.close("all")


# -- the diagrams draw what their labels say ----------------------------------------------------

def _patches(fig, gid):
    return [p for ax in fig.axes for p in ax.patches if p.get_gid() == gid]


def _data_box(patch):
    """A patch's extent in data coordinates (x0, y0, x1, y1), from its drawn path."""
    ax = patch.axes
    corners = ax.transData.inverted().transform(patch.get_window_extent().get_points())
    return (*corners[0], *corners[1])


@pytest.mark.parametrize("grid", [1, 2, 3])
def test_vit_pipeline_draws_one_token_per_patch_and_one_cls_token(grid):
    fig = plotting.vit_pipeline(grid)
    try:
        patches, tokens = _patches(fig, "patch"), _patches(fig, "patch token")
        assert len(patches) == len(tokens) == grid * grid
        assert len(_patches(fig, "CLS token")) == 1
        texts = [t.get_text() for t in fig.axes[0].texts]
        numbers = [str(k) for k in range(1, grid * grid + 1)]
        assert sorted(t for t in texts if t.isdigit()) == sorted(numbers * 2)  # each patch, its token
        assert f"image,\ncut into\n{grid * grid} patches" in texts
        # the CLS token sits above the patch tokens, which run from top to bottom in patch order
        cls_y = _patches(fig, "CLS token")[0].get_y()
        assert all(cls_y > t.get_y() for t in tokens)
    finally:
        plt.close(fig)


def test_vit_pipeline_refuses_a_grid_too_big_to_read():
    with pytest.raises(ValueError, match="grid=4: the diagram draws 1 to 3 patches a side"):
        plotting.vit_pipeline(4)


def test_deit_test_time_note_is_in_a_box_the_two_heads_feed():
    plotting.use_book_style()
    fig = plotting.deit_tokens()
    try:
        fig.canvas.draw()
        (mean,) = _patches(fig, "test-time mean")
        x0, y0, x1, y1 = _data_box(mean)
        (note,) = [t for t in fig.axes[0].texts if t.get_text().startswith("at test time")]
        x, y = note.get_position()
        assert x0 < x < x1 and y0 < y < y1                   # the note is the box's own text
        for head in ("CLS head", "DIST head"):
            (box,) = _patches(fig, head)
            (arrow,) = _patches(fig, f"{head} → mean")
            start, end = arrow._posA_posB
            hx0, hy0, hx1, hy1 = _data_box(box)
            assert min(abs(start[0] - hx0), abs(start[0] - hx1)) < 0.15 and hy0 < start[1] < hy1
            assert min(abs(end[0] - x0), abs(end[0] - x1)) < 0.15 and y0 < end[1] < y1
    finally:
        plt.close(fig)


@pytest.mark.parametrize("side, window, regular, shifted, pieces", [
    (8, 4, "4 windows of 4 × 4 tokens", "shifted by 2\n9 windows, 2 or 4 tokens a side", 3),
    (12, 4, "9 windows of 4 × 4 tokens", "shifted by 2\n16 windows, 2 or 4 tokens a side", 4),
    (12, 6, "4 windows of 6 × 6 tokens", "shifted by 3\n9 windows, 3 or 6 tokens a side", 3),
])
def test_swin_windows_counts_the_windows_it_draws(side, window, regular, shifted, pieces):
    assert len(plotting._window_edges(side, window, window // 2)) - 1 == pieces
    fig = plotting.swin_windows(side, window)
    try:
        texts = [t.get_text() for t in fig.axes[0].texts]
        assert any(t.startswith("block ℓ: regular windows\n" + regular) for t in texts), texts
        assert any(t.startswith("block ℓ + 1: windows " + shifted) for t in texts), texts
        assert not any("block l" in t for t in texts)      # ℓ, never an l that reads as a 1
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="at least 2 × 2 whole windows"):
        plotting.swin_windows(6, 4)


def test_swin_stages_draws_each_map_to_scale_and_says_its_size_and_width():
    fig = plotting.swin_stages()
    try:
        sides = [_patches(fig, f"stage {k} map")[0].get_width() for k in (1, 2, 3, 4)]
        heights = [_patches(fig, f"stage {k} map")[0].get_height() for k in (1, 2, 3, 4)]
        assert sides == heights                                       # squares
        assert [a / b for a, b in zip(sides, sides[1:])] == pytest.approx([2, 2, 2])  # 56, 28, 14, 7
        texts = [t.get_text() for t in fig.axes[0].texts]
        for k, (side, dim, width) in enumerate(zip((56, 28, 14, 7), (96, 192, 384, 768),
                                                   ("C", "2C", "4C", "8C"))):
            factor = 4 * 2 ** k
            assert f"stage {k + 1}\nH/{factor} × W/{factor} × {width}\n{side} × {side} × {dim}" in texts
        assert texts.count("merge") == 3
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="doubles the width"):
        plotting.swin_stages(dims=(96, 192, 288, 768))
    with pytest.raises(ValueError, match="does not halve 3 times"):
        plotting.swin_stages(image=200)


def test_history_plot_draws_each_run_with_whole_epoch_ticks():
    import pandas as pd

    def history(offset):
        epochs = pd.RangeIndex(1, 5, name="epoch")
        return pd.DataFrame({"train_loss": [2.0, 1.5, 1.2, 1.0], "test_loss": [2.1, 1.7, 1.4, 1.3],
                             "test_acc": [0.3 + offset, 0.4 + offset, 0.5, 0.55]}, index=epochs)

    plotting.use_book_style()
    fig = plotting.plot_history({"CLS": history(0.0), "mean": history(0.05)}, "run label")
    try:
        left, right = fig.axes
        assert [line.get_label() for line in left.get_lines()] == [
            "CLS: train (smoothed targets)", "CLS: test", "mean: train (smoothed targets)", "mean: test"]
        assert [line.get_label() for line in right.get_lines()] == ["CLS", "mean"]
        legend = fig.legends[0]                     # one legend, under both panels
        assert [t.get_text() for t in legend.get_texts()] == [
            "CLS: train (smoothed targets)", "CLS: test", "mean: train (smoothed targets)", "mean: test"]
        assert left.get_legend() is None and right.get_legend() is None
        assert list(right.get_lines()[1].get_ydata()) == [0.35, 0.45, 0.5, 0.55]
        fig.canvas.draw()
        ticks = [t for t in left.get_xticks() if 1 <= t <= 4]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        accuracy_ticks = [t.get_text() for t in right.get_yticklabels()]
        assert accuracy_ticks and all(t.endswith(" %") for t in accuracy_ticks), accuracy_ticks
        assert fig._suptitle.get_text() == "run label"
    finally:
        plt.close(fig)
    single = plotting.plot_history({"": history(0.0)}, "one run")
    try:
        labels = [line.get_label() for line in single.axes[0].get_lines()]
        assert labels == ["train (smoothed targets)", "test"]
        assert [t.get_text() for t in single.legends[0].get_texts()] == ["train (smoothed targets)", "test"]
    finally:
        plt.close(single)


def test_history_plot_gives_each_run_one_colour():
    import pandas as pd

    history = pd.DataFrame({"train_loss": [2.0, 1.0], "test_loss": [2.1, 1.3], "test_acc": [0.3, 0.5]},
                           index=pd.RangeIndex(1, 3))
    fig = plotting.plot_history({"a": history, "b": history}, "t")
    try:
        left, right = fig.axes
        colours = [line.get_color() for line in left.get_lines()]
        assert colours[0] == colours[1] != colours[2] == colours[3]
        assert [line.get_color() for line in right.get_lines()] == [colours[0], colours[2]]
        assert [line.get_linestyle() for line in left.get_lines()] == ["-", "--", "-", "--"]
    finally:
        plt.close(fig)


# -- the layout mechanism and its helpers --------------------------------------------------------

def _book_figure(*args, **kwargs):
    plotting.use_book_style()
    return plt.subplots(*args, **kwargs)


def test_the_style_lays_figures_out_with_constrained_layout_and_ignores_tight_layout():
    import warnings

    from matplotlib.layout_engine import ConstrainedLayoutEngine

    fig, ax = _book_figure()
    try:
        shown = ax.imshow(np.arange(6.0).reshape(2, 3))
        fig.colorbar(shown, ax=ax)
        assert isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine)
        with warnings.catch_warnings():
            warnings.simplefilter("error")   # plain matplotlib warns or raises here
            fig.tight_layout()
            plt.tight_layout()
        assert isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine)
    finally:
        plt.close(fig)


def test_show_maps_puts_every_map_on_one_scale_with_one_colour_bar():
    maps = [np.full((3, 3), 0.01), np.linspace(0.0, 0.06, 9).reshape(3, 3), np.full((3, 3), 0.33)]
    fig, axes = _book_figure(1, 3, figsize=(7.5, 2.6))
    try:
        bar = plotting.show_maps(axes, maps, label="weight", titles=["a", "b", "c"])
        images = [ax.get_images()[0] for ax in axes]
        assert {(im.norm.vmin, im.norm.vmax) for im in images} == {(0.0, 0.33)}
        assert all(im.norm is images[0].norm for im in images)          # one scale, not three
        assert bar.vmin == 0.0 and bar.vmax == 0.33 and bar.ax.get_ylabel() == "weight"
        assert len(fig.axes) == 4                                       # three maps, ONE colour bar
        # the 0.06 peak is drawn well below the 0.33 one, not as bright
        assert images[1].norm(0.06) < 0.2 < images[2].norm(0.33) == 1.0
        assert [ax.get_title() for ax in axes] == ["a", "b", "c"]
        fig.canvas.draw()
    finally:
        plt.close(fig)


def test_show_maps_spans_a_grid_and_takes_fixed_ends():
    maps = [np.eye(2) * k for k in (1, 2, 3, 4)]
    fig, axes = _book_figure(2, 2)
    try:
        bar = plotting.show_maps(axes, maps, label="x", vmin=0.0, vmax=5.0)
        assert (bar.vmin, bar.vmax) == (0.0, 5.0)
        assert len(fig.axes) == 5
    finally:
        plt.close(fig)


def test_show_maps_rejects_mismatched_and_flat_input_with_a_clear_error():
    fig, axes = _book_figure(1, 2)
    try:
        with pytest.raises(ValueError, match="3 maps for 2 axes"):
            plotting.show_maps(axes, [np.eye(2)] * 3, label="x")
        with pytest.raises(ValueError, match="1 titles for 2 maps"):
            plotting.show_maps(axes, [np.eye(2)] * 2, label="x", titles=["one"])
        with pytest.raises(ValueError, match="span no range"):
            plotting.show_maps(axes, [np.ones((2, 2))] * 2, label="x")
        with pytest.raises(ValueError, match="no finite values"):
            plotting.shared_norm([np.full((2, 2), np.nan)])
    finally:
        plt.close(fig)


def test_diverging_norm_is_centred_on_zero():
    norm = plotting.diverging_norm([np.array([[-0.2, 0.1]]), np.array([[0.5]])])
    assert norm.vcenter == 0.0 and norm.halfrange == 0.5
    assert norm(0.0) == 0.5                       # 0 is the middle (white) colour
    assert norm(0.5) == 1.0 and norm(-0.5) == 0.0  # equal strength either side
    assert norm(-0.2) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="all 0"):
        plotting.diverging_norm(np.zeros((2, 2)))


def test_show_maps_diverging_centres_the_bar_on_zero():
    fig, axes = _book_figure(1, 2)
    try:
        bar = plotting.show_maps(axes, [np.array([[-1.0, 0.2]]), np.array([[0.4, 0.0]])],
                                 label="difference", diverging=True)
        image = axes[0].get_images()[0]
        assert image.get_cmap().name == plotting.DIVERGING_CMAP
        assert (bar.vmin, bar.vmax) == (-1.0, 1.0) and image.norm(0.0) == 0.5
    finally:
        plt.close(fig)


@pytest.mark.parametrize("side", ["right", "below"])
def test_legend_outside_keeps_the_legend_off_the_data(side):
    fig, ax = _book_figure(figsize=(6, 3))
    try:
        for k in range(3):
            ax.plot([0, 1, 2], [k, k + 1, k + 2], label=f"run {k}")
        ax.set_xlabel("epoch")
        legend = plotting.legend_outside(ax, side=side)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        box, data = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
        label = ax.xaxis.label.get_window_extent(renderer)
        assert box.x0 >= data.x1 if side == "right" else box.y1 <= label.y0, (box, data, label)
        whole = fig.bbox
        assert whole.x0 <= box.x0 and box.x1 <= whole.x1 + 1 and whole.y0 <= box.y0 + 1  # on the figure
        with pytest.raises(ValueError, match="use 'right' or 'below'"):
            plotting.legend_outside(ax, side="left")
    finally:
        plt.close(fig)


@pytest.mark.parametrize("width_in", [5.0, 7.5, 11.0, 14.0])
def test_text_shows_at_least_the_legible_minimum_in_pixels_at_the_column_width(width_in):
    fig, axes = _book_figure(1, 3, figsize=(width_in, 3))
    try:
        plotting.show_maps(axes, [np.eye(3) * k for k in (1, 2, 3)], label="weight",
                           titles=["first", "second", "third"])
        axes[0].set_xlabel("a small label", fontsize=6)
        fig.suptitle("a title")
        fig.canvas.draw()
        texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
        ticks = [t for ax in fig.axes for t in ax.yaxis.get_ticklabels() if t.get_text()]
        shown_px = [plotting.rendered_px(t.get_fontsize(), width_in, fig.dpi) for t in texts + ticks]
        assert ticks and min(shown_px) >= plotting.MIN_TEXT_PX - 1e-6, min(shown_px)
        assert axes[0].xaxis.label.get_fontsize() > 6 or plotting.rendered_px(6, width_in, fig.dpi) >= 10
    finally:
        plt.close(fig)


def test_show_maps_colour_bar_is_as_tall_as_the_maps():
    fig, axes = _book_figure(1, 4, figsize=(7.5, 3.0))     # taller than four square maps need
    try:
        bar = plotting.show_maps(axes, [np.eye(7) * k for k in (1, 2, 3, 4)], label="weight")
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        maps = axes[0].get_window_extent(renderer)
        colour_bar = bar.ax.get_window_extent(renderer)
        assert abs(colour_bar.height - maps.height) <= 0.05 * maps.height, (colour_bar, maps)
    finally:
        plt.close(fig)


def test_show_maps_draws_each_map_over_its_picture_on_the_shared_scale():
    picture = np.linspace(0, 1, 16).reshape(4, 4)
    maps = [np.full((4, 4), 0.06), np.full((4, 4), 0.33)]
    fig, axes = _book_figure(1, 2)
    try:
        bar = plotting.show_maps(axes, maps, label="attention", vmin=0, under=picture, alpha=0.5)
        for ax in axes:
            below, heat = ax.get_images()
            assert below.get_cmap().name == "gray" and np.array_equal(below.get_array(), picture)
            assert heat.get_alpha() == 0.5 and heat.norm is axes[0].get_images()[1].norm
        assert (bar.vmin, bar.vmax) == (0.0, 0.33)
        with pytest.raises(ValueError, match="3 pictures under 2 maps"):
            plotting.show_maps(axes, maps, label="x", under=[picture] * 3)
    finally:
        plt.close(fig)
