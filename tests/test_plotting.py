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
