"""One formatter for every number a chapter's prose and its tables share.

A sentence quotes a number through ``glue``; a table shows it through pandas. If each rounds on
its own they can disagree (pandas' ``round(3)`` scales, rounds and divides in binary floating
point; ``f"{x:.3f}"`` rounds the exact stored value), and a reader sees 0.733 in the text
beside 0.732 in the table. Here both go through :func:`fmt`, so they agree by construction::

    acc = glue_value("race_vit_acc", 0.73249999, "acc")   # glued and returned: "73.2 %"
    table(results, {"test accuracy": "acc"})                # the table cell: "73.2 %"

Kinds (``FORMATS``): ``acc`` (an accuracy, stored as a fraction, shown in % to 1 place, as
papers give it, so that a difference in ``points`` reads against it), ``pct`` (a share as a
percentage to 1 place;
``pct0`` in whole percent, for set values such as DINO's 60 %),
``points`` (a signed difference in percentage points, 1 place), ``ratio`` (2 places),
``count`` (thousands separators), ``loss`` (3 places), ``ms`` (milliseconds, 1 place),
``seconds`` (whole seconds), ``x`` (a speed or size ratio like "2.4×"), and ``dec1`` /
``dec2`` / ``dec3`` / ``dec4`` for other quantities shown to 1, 2, 3 or 4 places (entropies in
nats, a hand-worked loss, a momentum like 0.996).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal

MINUS = "\u2212"  # −, the minus sign: a hyphen is shorter and sits lower than the plus beside it

FORMATS: dict[str, str] = {
    "acc": "{:.1f} %",
    "pct": "{:.1f} %",
    "pct0": "{:.0f} %",
    "points": "{:+.1f}",
    "ratio": "{:.2f}",
    "count": "{:,}",
    "loss": "{:.3f}",
    "ms": "{:.1f}",
    "seconds": "{:.0f}",
    "x": "{:.1f}×",
    "dec1": "{:.1f}",
    "dec2": "{:.2f}",
    "dec3": "{:.3f}",
    "dec4": "{:.4f}",
}


def fmt(value, kind: str) -> str:
    """``value`` as text in the book's one format for ``kind`` (see ``FORMATS``).

    ``acc`` and ``pct`` take a fraction (0.731 → "73.1 %"); ``points`` a fraction too
    (0.012 → "+1.2"). A negative number is written with the minus sign (−0.6), not a hyphen;
    one that rounds to zero carries no minus.
    ``count`` needs an integer value. NaN prints as "–".
    """
    if kind not in FORMATS:
        raise ValueError(f"unknown number kind {kind!r}; use one of {', '.join(FORMATS)}.")
    if isinstance(value, bool) or value is None:
        raise TypeError(f"fmt() takes a number, got {value!r}.")
    number = float(value)
    if math.isnan(number):
        return "–"
    if kind == "count":
        if number != round(number):
            raise ValueError(f"a count must be a whole number, got {value!r}.")
        return FORMATS[kind].format(int(round(number))).replace("-", MINUS, 1)
    exact = Decimal(number) * (100 if kind in ("acc", "pct", "pct0", "points") else 1)
    places = int(re.search(r"\.(\d)f", FORMATS[kind])[1])
    # halves round up, as a reader rounds 4/64 = 6.25 % to 6.3 %: the float's exact value decides
    number = float(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))
    text = FORMATS[kind].format(number)
    if text.lstrip("-+").strip("0.,×% ") == "":  # rounds to zero: no sign of its own
        return text.replace("-", "+") if kind == "points" else text.lstrip("-")
    return text.replace("-", MINUS, 1)  # a printed minus sign, not a hyphen


class GluedText(str):
    """The text a glue call returns: a plain ``str`` that shows nothing when it is a cell's last
    value, so a cell ending in a glue call prints no stray ``'2,000'`` under the code."""

    def _ipython_display_(self) -> None:
        pass


def glue_value(name: str, value, kind: str) -> GluedText:
    """Glue ``fmt(value, kind)`` under ``name`` (myst-nb, not displayed) and return the text."""
    from myst_nb import glue

    text = fmt(value, kind)
    glue(name, text, display=False)
    return GluedText(text)


def glue_markdown(name: str, text: str) -> GluedText:
    """Glue ``text`` under ``name`` as Markdown (myst-nb, not displayed) and return it.

    For prose that depends on the run, e.g. a sentence true only of the offline stand-in: the
    chapter writes ``{glue:md}`name``` where the sentence goes, and the cell picks the sentence.
    """
    from IPython.display import Markdown
    from myst_nb import glue

    glue(name, Markdown(text), display=False)
    return GluedText(text)


def table(frame, kinds: Mapping[str, str] | None = None, *, caption: str | None = None):
    """A pandas Styler showing ``frame`` with each column in ``kinds`` formatted by :func:`fmt`.

    Columns not named keep pandas' own display (``kinds`` may be left out); NaN cells are left
    empty, and a formatted cell does not wrap between a number and its unit. The index's names
    are shown in the one header row, not on a row of their own: a one-level index's name in the
    corner, a several-level index as the first columns, each label written once for its run of
    rows (as pandas groups them).
    """
    kinds = dict(kinds or {})
    missing = [column for column in kinds if column not in frame.columns]
    if missing:
        raise KeyError(f"no column {missing[0]!r} in the table; it has {', '.join(map(str, frame.columns))}.")

    def formatter(kind):
        return lambda value: "" if value is None or value != value else fmt(value, kind)

    names = list(frame.index.names)
    one_header = frame.columns.nlevels == 1 and frame.columns.name is None
    as_columns = (one_header and frame.index.nlevels > 1 and None not in names
                  and not set(names) & set(frame.columns))
    if one_header and frame.index.nlevels == 1 and names != [None]:
        frame = frame.rename_axis(index=None, columns=names[0])
    elif as_columns:
        frame = frame.reset_index()
        for level, name in enumerate(names[:-1]):  # a label once per run of equal rows
            key = frame[names[: level + 1]].astype(str).agg("\x1f".join, axis=1)
            frame[name] = frame[name].where(key != key.shift(), "")
    styler = frame.style.format({column: formatter(kind) for column, kind in kinds.items()})
    if kinds:  # a number and its unit on one line: "53.9 %" never wraps inside its cell
        styler = styler.set_properties(subset=list(kinds), **{"white-space": "nowrap"})
    if as_columns:
        styler = styler.hide(axis="index")
    return styler.set_caption(caption) if caption else styler


def how_many(count: int, total: int, noun: str) -> str:
    """``count`` of ``total`` things as a reader says it: "both heads", "all 6 heads",
    "none of the 6 heads", "2 of the 6 heads". ``noun`` is singular; the plural adds an s.

    The verb after it is singular when ``count`` is 0 or 1 ("neither head reaches").
    """
    if not 0 <= count <= total or total < 1:
        raise ValueError(f"how_many needs 0 <= count <= total and total >= 1, got {count} of {total}.")
    nouns = noun if total == 1 else f"{noun}s"
    if total == 1:
        return f"the one {noun}" if count else f"no {noun}"
    if count == 0:
        return f"neither {noun}" if total == 2 else f"none of the {total:,} {nouns}"
    if count == total:
        return f"both {nouns}" if total == 2 else f"all {total:,} {nouns}"
    return f"{count:,} of the {total:,} {nouns}"
