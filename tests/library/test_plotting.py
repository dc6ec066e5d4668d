"""The book's figure style and its architecture diagrams (vitcourse.plotting)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from vitcourse import plotting  # noqa: E402

def _texts(fig):
    return [t for ax in fig.axes for t in ax.texts] + [ax.title for ax in fig.axes if ax.get_title()]


@pytest.mark.parametrize("draw, words", [
    (plotting.vit_pipeline, ["CLS", "linear\nprojection", "encoder\nblock\n× L", "Layer\nNorm"]),
    (plotting.encoder_blocks, ["post-norm: LN(x + f(x))", "pre-norm: x + f(LN(x))", "MHA", "MLP"]),
    (plotting.deit_tokens, ["CLS", "DIST", "CLS head", "DIST head"]),
    (plotting.swin_windows, ["block l: 4 windows of 4 × 4", "block l + 1: shifted by 2, 9 pieces"]),
    (plotting.swin_stages, ["56 × 56\n× 96", "7 × 7\n× 768", "stage 4"]),
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
        ax.set_title("small but legible", fontsize=7)
        for fig in (wide, narrow):
            fig.canvas.draw()
        sizes = [t.get_fontsize() for t in wide.findobj(mpl.text.Text) if t.get_text().strip()]
        assert min(rendered_px(s, 14, wide.dpi) for s in sizes) >= MIN_TEXT_PX - 1e-6
        assert axes[0].title.get_fontsize() > 7
        assert ax.title.get_fontsize() == 7                 # 7 pt at 110 dpi is 10.7 px: untouched
        assert rendered_px(7, 5, narrow.dpi) > MIN_TEXT_PX
        plt.close("all")


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
        assert list(right.get_lines()[1].get_ydata()) == [0.35, 0.45, 0.5, 0.55]
        fig.canvas.draw()
        ticks = [t for t in left.get_xticks() if 1 <= t <= 4]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        assert fig._suptitle.get_text() == "run label"
    finally:
        plt.close(fig)
    single = plotting.plot_history({"": history(0.0)}, "one run")
    try:
        assert [line.get_label() for line in single.axes[0].get_lines()] == ["train (smoothed targets)", "test"]
        assert single.axes[1].get_legend() is None
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
