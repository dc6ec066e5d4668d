"""vitcourse.report: prose and tables format a shared number the same way."""

import numpy as np
import pandas as pd
import pytest

from vitcourse.report import fmt, table


def test_formats_each_kind():
    assert fmt(0.73249999, "acc") == "73.2 %"   # an accuracy, in % as papers give it
    assert fmt(0.731, "pct") == "73.1 %"
    assert fmt(0.012, "points") == "+1.2"
    assert fmt(-0.006, "points") == "\u22120.6"   # the minus sign, not a hyphen
    assert fmt(-1234, "count") == "\u22121,234" and fmt(-0.0001, "dec3") == "0.000"
    assert fmt(-0.0001, "points") == "+0.0"
    assert fmt(12345, "count") == "12,345"
    assert fmt(np.int64(7), "count") == "7"
    assert fmt(2.449, "x") == "2.4×"
    assert fmt(0.996, "dec3") == "0.996" and fmt(0.07, "dec2") == "0.07"
    assert fmt(float("nan"), "acc") == "–"


def test_table_and_prose_agree_where_pandas_round_does_not():
    # values whose pandas .round(3) and f"{:.3f}" disagree (binary halfway cases)
    values = np.array([0.7325, 0.5725, 0.5945, 0.0005, 0.1235, 0.8675])
    disagree = [v for v in values if f"{pd.Series([v]).round(3)[0]:.3f}" != f"{v:.3f}"]
    assert disagree, "the premise: pandas' round and Python's format differ somewhere here"
    frame = pd.DataFrame({"test loss": values})
    html = table(frame, {"test loss": "loss"}).to_html()
    for value in values:
        assert f">{fmt(value, 'loss')}<" in html


def test_bad_input_says_what_was_wrong():
    with pytest.raises(ValueError, match="unknown number kind 'percent'"):
        fmt(0.5, "percent")
    with pytest.raises(ValueError, match="whole number"):
        fmt(2.5, "count")
    with pytest.raises(TypeError, match="takes a number"):
        fmt(True, "acc")
    with pytest.raises(KeyError, match="no column 'acc'"):
        table(pd.DataFrame({"a": [1.0]}), {"acc": "acc"})


def test_a_glue_call_ending_a_cell_shows_nothing_there():
    """A cell whose last line is a glue call must not print the glued text under the code
    (run in a real kernel, as the book's build runs a chapter)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from vitcourse import report\nreport.glue_value('n', 2000, 'count')"),
        nbformat.v4.new_code_cell("report.glue_markdown('note', 'Only on the stand-in.')"),
        nbformat.v4.new_code_cell("text = report.glue_value('n', 2000, 'count')\ntext + ' images'"),
    ])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    first, second, third = (cell.outputs for cell in nb.cells)
    glued = [o for o in first if o.get("metadata", {}).get("scrapbook", {}).get("name") == "n"]
    assert glued and glued[0]["data"]["application/papermill.record/text/plain"] == "'2,000'"
    assert [o for o in first if o.output_type == "execute_result"] == []
    assert [o for o in second if o.output_type == "execute_result"] == []
    assert [o.data["text/plain"] for o in third if o.output_type == "execute_result"] == ["'2,000 images'"]


def test_pct0_is_whole_percent_for_set_values():
    assert fmt(0.6, "pct0") == "60 %"
    assert fmt(0.125, "pct0") == "13 %"  # an exact half rounds up, as a reader rounds it
    assert fmt(4 / 64, "pct") == "6.3 %" and fmt(0.0345, "pct") == "3.5 %"
    assert fmt(0.73249999, "loss") == "0.732"  # the stored value decides, not its nearest decimal


def test_a_tables_index_name_sits_in_the_header_row_not_on_a_row_of_its_own():
    import re

    import pandas as pd
    from vitcourse.report import table

    frame = pd.DataFrame({"accuracy": [0.5, 0.61]}, index=pd.Index(["a", "b"], name="model"))
    head = table(frame, {"accuracy": "acc"}).to_html().split("<thead>")[1].split("</thead>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", head, re.S)
    assert len(rows) == 1 and ">model</th>" in rows[0] and ">accuracy</th>" in rows[0]
    assert frame.index.name == "model"  # the caller's frame is left as it was


def test_a_table_with_two_header_levels_keeps_its_index_name_where_pandas_puts_it():
    import pandas as pd
    from vitcourse.report import table

    columns = pd.MultiIndex.from_tuples([("time", "global"), ("time", "window")])
    frame = pd.DataFrame([[1.0, 2.0]], columns=columns, index=pd.Index([64], name="tokens"))
    html = table(frame, {("time", "global"): "dec1"}).to_html()
    assert ">tokens</th>" in html and ">1.0<" in html


def test_a_several_level_index_becomes_the_first_columns_of_one_header_row():
    import re

    from vitcourse.report import table

    index = pd.MultiIndex.from_tuples(
        [("(a)", "CLS"), ("(a)", "DIST"), ("(b)", "CLS"), ("(b)", "DIST")], names=["variant", "head"])
    frame = pd.DataFrame({"accuracy": [0.5, 0.6, 0.7, 0.8]}, index=index)
    html = table(frame, {"accuracy": "acc"}).to_html()
    head = html.split("<thead>")[1].split("</thead>")[0]
    assert re.findall(r">([^<>]+)</th>", head) == ["variant", "head", "accuracy"]
    body = html.split("<tbody>")[1]
    cells = [re.findall(r">([^<>]*)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]
    assert cells == [["(a)", "CLS", "50.0 %"], ["", "DIST", "60.0 %"],
                     ["(b)", "CLS", "70.0 %"], ["", "DIST", "80.0 %"]]
    assert frame.index.names == ["variant", "head"] and list(frame.columns) == ["accuracy"]


def test_how_many_says_counts_as_a_reader_would():
    from vitcourse.report import how_many

    assert how_many(2, 2, "head") == "both heads"
    assert how_many(0, 2, "head") == "neither head"
    assert how_many(1, 2, "head") == "1 of the 2 heads"
    assert how_many(6, 6, "head") == "all 6 heads"
    assert how_many(0, 6, "head") == "none of the 6 heads"
    assert how_many(3, 6, "head") == "3 of the 6 heads"
    assert how_many(1, 1, "head") == "the one head"
    with pytest.raises(ValueError, match="0 <= count <= total"):
        how_many(3, 2, "head")


def test_formatted_cells_keep_number_and_unit_on_one_line_and_kinds_may_be_left_out():
    frame = pd.DataFrame({"accuracy": [0.539], "note": ["a long note that may wrap"]})
    html = table(frame, {"accuracy": "acc"}).to_html()
    rules = html.split("</style>")[0]
    assert "white-space: nowrap" in rules and html.count("white-space") == 1  # the formatted column only
    assert ">53.9 %<" in html
    assert ">a long note that may wrap<" in table(frame).to_html()
