"""The CIFAR chapters (6-9) and assignment 3 on a CIFAR-10 file in the official format.

The real CIFAR-10 cannot be had on this machine, so a ``cifar-10-python.tar.gz`` is built with
the official layout and pickle structure from stand-in pixels, the checksum table and the
Source sizes swapped for it (tests/support/data_files.py), and put where the loaders find it.  What
differs on real data then runs: the loaders return ``cifar10`` (not a stand-in), the chapters'
measurement functions work on it or refuse clearly (no object masks for photographs), the
book's stand-in banner stays off, the chapters' stand-in-only claims and glued prose are
conditional, and assignment 3's graded cells pass without touching any data.
"""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import sphinx_course  # tools/, on the tests' path (pyproject.toml)
import torch
from docutils import nodes

import tests.support.data_files as fx
from tests.support.assignments import ROOT, run_assignment
from tests.support.pages import doctree_with_outputs
from vitcourse.attention_maps import (cls_attention_map, cls_attention_maps, cls_rollout_map,
                                      keep_top_mass, object_share)
from vitcourse.cifar import QUICK_VIT, CifarTrainer, normalize, per_class_table, quick_vit_recipe
from vitcourse.data import SyntheticDataWarning, load_cifar10
from vitcourse.data.synthetic import synthetic_object_masks
from vitcourse.profile import Profile, run_label


N_TRAIN, N_TEST = 1_000, 1_000
CHAPTERS = ["06_full_vit_cifar", "07_attention_maps_dino", "08_deit", "09_swin"]
TINY = dict(epochs=1, batch_size=50, train_subset=200, test_subset=100, warmup_epochs=0.0)


@pytest.fixture(scope="module")
def pixels():
    """Stand-in pixels to write in the official format: 1,000 train and 1,000 test images."""
    return fx.standin_cifar_arrays(N_TRAIN, N_TEST)


@pytest.fixture
def real(monkeypatch, tmp_path, pixels):
    """load_cifar10() finds only the official-format file (no system folder, no download)."""
    monkeypatch.setenv("VITCOURSE_PROFILE", "quick")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    fx.install_official_cifar(monkeypatch, tmp_path / "data", pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SyntheticDataWarning)    # a stand-in would fail the test
        return load_cifar10()


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("standin", ["synthetic-cifar", "synthetic-cifar-clutter"])
def test_the_official_file_is_loaded_as_the_real_data_set(monkeypatch, tmp_path, pixels, standin):
    path = fx.install_official_cifar(monkeypatch, tmp_path / "data", pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SyntheticDataWarning)
        data = load_cifar10(standin=standin, allow_synthetic=True)
    assert (data.name, data.synthetic) == ("cifar10", False)
    for got, put in zip(data.arrays(), pixels):
        np.testing.assert_array_equal(got, put)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert data.class_names[0] == "airplane" and len(data.class_names) == 10
    summary = data.summary()
    assert summary == "cifar10: 1,000 training and 1,000 test images, each (32, 32, 3) uint8"
    assert str(tmp_path) not in summary and "synthetic" not in summary and "stand-in" not in summary
    assert str(path.parent) in data.note     # the folder is in the note, which summary() leaves out


def test_a_substituted_file_is_refused_not_replaced_by_the_stand_in(monkeypatch, tmp_path, pixels):
    path = fx.install_official_cifar(monkeypatch, tmp_path / "data", pixels)
    x_train, y_train, x_test, y_test = pixels
    path.write_bytes(fx.cifar_tarball(arrays=(x_train, y_train, x_test[::-1].copy(), y_test)))
    from vitcourse.data import DataFileError

    with pytest.raises(DataFileError, match=r"cifar-10-python\.tar\.gz: MD5 is .* official file's is"):
        load_cifar10(allow_synthetic=True)


# ---------------------------------------------------------------------------------------------
# The chapters' measurement functions on the real data set
# ---------------------------------------------------------------------------------------------

def _images(data, n: int) -> torch.Tensor:
    """The first n test images as the models take them: (n, 3, 32, 32) float, normalised."""
    return normalize(torch.from_numpy(data.x_test[:n]).permute(0, 3, 1, 2).float() / 255)


def test_attention_maps_work_on_the_real_data(real):
    torch.manual_seed(0)
    from vitcourse.vit import VisionTransformer

    model = VisionTransformer(replace(QUICK_VIT, patch_size=4)).eval()
    images = _images(real, 8)
    maps = cls_attention_map(model, images[0])
    assert maps.shape == (4, 8, 8) and (maps >= 0).all() and (maps.sum((1, 2)) < 1).all()
    batch = cls_attention_maps(model, images, batch_size=3)
    assert batch.shape == (8, 4, 8, 8)
    torch.testing.assert_close(batch[0], maps)
    rollout = cls_rollout_map(model, images[0])
    assert rollout.shape == (8, 8) and 0 < float(rollout.sum()) <= 1 + 1e-5
    kept = keep_top_mass(maps, 0.6)
    share = (maps * kept).flatten(1).sum(1) / maps.flatten(1).sum(1)
    assert (share >= 0.6 - 1e-5).all()


def test_object_masks_are_refused_clearly_for_the_real_data(real):
    with pytest.raises(ValueError, match=r"not 'cifar10' \(a real data set.*Dataset\.synthetic"):
        synthetic_object_masks("test", N_TEST, real.name)
    # the chapter's measurement needs masks, and takes none for a photograph
    maps = torch.ones(2, 8, 8)
    with pytest.raises(ValueError, match="must match"):
        object_share(maps, np.zeros((3, 32, 32)))


def test_dino_measurements_work_on_the_real_data(real):
    from vitcourse.dino import (extract_features, knn_accuracy, knn_predict, make_backbone,
                                quick_dino_recipe, view_matching_accuracy)

    recipe = quick_dino_recipe()
    torch.manual_seed(0)
    backbone = make_backbone(recipe.model).eval()
    bank = extract_features(backbone, real.x_train[:300])
    queries = extract_features(backbone, real.x_test[:100])
    assert bank.shape == (300, recipe.model.dim) and torch.allclose(bank.norm(dim=1), torch.ones(300))
    accuracy = knn_accuracy(bank, real.y_train[:300], queries, real.y_test[:100], k=20,
                            num_classes=len(real.class_names))
    predicted = knn_predict(bank, real.y_train[:300], queries, k=20, num_classes=10)
    right = int((predicted == torch.from_numpy(real.y_test[:100])).sum())
    assert accuracy == pytest.approx(right / 100) and 0 <= right <= 100
    matched = view_matching_accuracy(backbone, real.x_test[:100], recipe)
    assert 0.0 <= matched <= 1.0 and matched * 100 == pytest.approx(round(matched * 100))


def test_chapter6_training_and_tables_run_on_the_real_data(real):
    trainer = CifarTrainer(quick_vit_recipe(**TINY), *real.arrays())
    history = trainer.fit(progress=False)
    assert len(history) == 1 and 0.0 <= history["test_acc"].iloc[-1] <= 1.0
    _, accuracy, confusion = trainer.evaluate()
    table = per_class_table(confusion, real.class_names)
    assert table["images"].sum() == 100 and table["correct"].sum() / 100 == accuracy
    assert run_label(real.name, "cpu", Profile("quick", "test")) == "profile=quick · device=cpu · data=cifar10"


def test_chapter6_ablation_and_chapter9_comparison_run_on_the_real_data(real):
    from vitcourse.cifar import ablation_findings, ablation_recipe, run_ablation, timed_fit
    from vitcourse.swin import SwinTrainer, compare_models, cost_findings, quick_swin_recipe

    runs = run_ablation(ablation_recipe(**TINY), *real.arrays(), seeds=(0,))
    assert len(runs) == 2 and set(runs["epoch"]) == {1}
    said = ablation_findings(runs)
    assert set(said) == {"gap", "test"} and "the one seed" in said["gap"] + said["test"]
    swin = SwinTrainer(quick_swin_recipe(**TINY), *real.arrays())
    vit = CifarTrainer(quick_vit_recipe(**TINY), *real.arrays())
    table = compare_models({"ViT": (vit, timed_fit(vit)), "Swin": (swin, timed_fit(swin))})
    said = cost_findings(table, "ViT", "Swin")
    assert said.startswith("Swin has ") and "the parameters of ViT" in said


def test_deit_measurements_run_on_the_real_data(real):
    from vitcourse.deit import (DistillationTrainer, ModelTrainer, freeze, learned_token_similarity,
                                locality_ratio, student_recipe_for, teacher_for, token_similarity)
    from vitcourse.stats import paired_gain
    from vitcourse.training import predict

    quick = Profile("quick", "test")
    arrays = real.arrays()
    teacher_trainer = ModelTrainer(student_recipe_for(quick, **TINY), lambda: teacher_for(quick), *arrays)
    teacher_trainer.fit(progress=False)
    teacher = freeze(teacher_trainer.model)
    student = DistillationTrainer(student_recipe_for(quick, **TINY), teacher, *arrays, mode="soft", tau=2.0, alpha=0.7)
    student.fit(progress=False)
    heads = student.evaluate_heads()
    assert list(heads.index) == ["CLS head", "distillation head", "average of both", "teacher"]
    assert heads.loc["teacher", "test accuracy"] == teacher_trainer.evaluate()[1]
    images = _images(real, 100)
    right = predict(student.model, images) == torch.from_numpy(real.y_test[:100])
    teacher_right = predict(teacher, images) == torch.from_numpy(real.y_test[:100])
    gain, se = paired_gain(teacher_right, right)
    assert -1.0 <= gain <= 1.0 and se >= 0.0
    similarity = token_similarity(student.model, images[:20])
    assert list(similarity.index)[0] == "input" and list(similarity.index)[-1] == "output"
    assert -1.0 <= learned_token_similarity(student.model) <= 1.0
    grid = student.model.config.image_size // student.model.config.patch_size
    ratio = locality_ratio(student.model.attention_maps(images[:10])[0], grid, special_tokens=2)
    assert ratio > 0


def test_swin_trains_on_the_real_data(real):
    from vitcourse.swin import SwinTrainer, quick_swin_recipe

    trainer = SwinTrainer(quick_swin_recipe(**TINY), *real.arrays())
    history = trainer.fit(progress=False)
    assert len(history) == 1 and 0.0 <= history["test_acc"].iloc[-1] <= 1.0


# ---------------------------------------------------------------------------------------------
# The book: no stand-in banner on a page that ran on the real data
# ---------------------------------------------------------------------------------------------

def _build(page: nodes.document):
    """Run the extension's stand-in steps on ``page``: (banners on it, the announcement bar)."""
    env = SimpleNamespace(docname="book/06_full_vit_cifar")
    app = SimpleNamespace(env=env, builder=SimpleNamespace(get_relative_uri=lambda a, b: "setup_check.html"))
    sphinx_course.record_standin(app, page)
    sphinx_course.add_standin_banner(app, page, env.docname)
    context = {"pathto": lambda name: f"{name}.html"}
    sphinx_course.standin_announcement(app, "book/06_full_vit_cifar", "page.html", context, page)
    banners = [n for n in page.findall(nodes.admonition) if "standin-banner" in n["classes"]]
    return banners, context.get("theme_announcement")


def test_a_page_run_on_the_real_data_gets_no_stand_in_banner(real):
    outputs = [real.summary(), run_label(real.name, "cpu"),
               "cifar10 has no object masks: this measurement needs the stand-in"]
    banners, announcement = _build(doctree_with_outputs(outputs))
    assert banners == [] and announcement is None


def test_the_same_page_run_on_the_stand_in_gets_the_banner():
    from vitcourse.data import load_standin

    standin = load_standin("synthetic-cifar-clutter", "quick")
    banners, announcement = _build(doctree_with_outputs([standin.summary(), run_label(standin.name, "cpu")]))
    assert len(banners) == 1 and "synthetic-cifar-clutter" in banners[0].astext()
    assert "not the real CIFAR-10" in announcement


# ---------------------------------------------------------------------------------------------
# The chapters' text: every glued name exists on both paths; stand-in margins only on it
# ---------------------------------------------------------------------------------------------

CELL = re.compile(r"^(?P<fence>```+|~~~+)\s*\{code-cell\}[^\n]*\n(?P<body>.*?)^(?P=fence)\s*$", re.S | re.M)
GLUE_ROLE = re.compile(r"\{glue(?::(?P<kind>\w+))?\}`(?P<name>[^`]+)`")
GLUERS = {"glue", "glue_value", "glue_markdown"}


def _cell_sources(text: str) -> list[str]:
    """The Python of every code cell (without its options)."""
    sources = []
    for match in CELL.finditer(text):
        lines = match["body"].split("\n")
        skip = lines.index("---", 1) + 1 if lines[0].strip() == "---" and "---" in lines[1:] else 0
        while skip < len(lines) and re.match(r"^:[\w-]+:", lines[skip]):
            skip += 1
        sources.append("\n".join(lines[skip:]))
    return sources


def _on_standin(test: ast.expr) -> bool | None:
    """True for an ``if`` that holds only on a stand-in (``data.synthetic``, maybe and-ed),
    False for ``not data.synthetic``, None for a test that does not ask."""
    text = ast.unparse(test)
    if re.fullmatch(r"not data\.synthetic", text):
        return False
    parts = test.values if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) else [test]
    return True if any(ast.unparse(p) == "data.synthetic" for p in parts) else None


def _loop_values(loop: ast.For) -> dict[str, list]:
    """{name: the strings it takes} for ``for a, b in [("x", ...), ...]`` over literal tuples."""
    targets = loop.target.elts if isinstance(loop.target, ast.Tuple) else [loop.target]
    rows = loop.iter.elts if isinstance(loop.iter, (ast.List, ast.Tuple)) else []
    values: dict[str, list] = {}
    for i, target in enumerate(targets):
        for row in rows:
            items = row.elts if isinstance(row, ast.Tuple) else [row]
            if isinstance(target, ast.Name) and i < len(items) and isinstance(items[i], ast.Constant):
                values.setdefault(target.id, []).append(items[i])
    return values


def _walk(statements, path: str, found: list, loops: dict | None = None) -> None:
    """Collect (node, path, loop values) for every glue call and assert; path is 'both',
    'standin' or 'real'."""
    loops = loops or {}
    for statement in statements:
        if isinstance(statement, ast.If) and (side := _on_standin(statement.test)) is not None:
            inside, other = ("standin", "real") if side else ("real", "standin")
            _walk(statement.body, inside if path == "both" else path, found, loops)
            _walk(statement.orelse, other if path == "both" else path, found, loops)
            continue
        if isinstance(statement, ast.Assert):
            found.append((statement, path, loops))
        inner = {**loops, **_loop_values(statement)} if isinstance(statement, ast.For) else loops
        for child in ast.iter_child_nodes(statement):
            if isinstance(child, ast.stmt):
                _walk([child], path, found, inner)
            elif isinstance(getattr(child, "body", None), list):      # except handlers
                _walk(child.body, path, found, inner)
            else:
                found += [(node, path, inner) for node in ast.walk(child) if isinstance(node, ast.Call)
                          and getattr(node.func, "id", getattr(node.func, "attr", None)) in GLUERS]


def _glued_names(chapter: str) -> dict[str, set[tuple[str, str]]]:
    """{'both' | 'standin' | 'real': {(name pattern, glue function)}} for a chapter's cells."""
    found: list = []
    for source in _cell_sources((ROOT / "book" / f"{chapter}.md").read_text()):
        _walk(ast.parse(source).body, "both", found)
    glued = {"both": set(), "standin": set(), "real": set()}
    for node, path, loops in found:
        if not isinstance(node, ast.Call) or not node.args:
            continue
        first = node.args[0]
        names = loops.get(first.id, []) if isinstance(first, ast.Name) else [first]
        function = getattr(node.func, "id", getattr(node.func, "attr", None))
        for name in names:
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                glued[path].add((re.escape(name.value), function))
            elif isinstance(name, ast.JoinedStr):
                glued[path].add(("".join(re.escape(v.value) if isinstance(v, ast.Constant) else r"\w+"
                                         for v in name.values), function))
    return glued


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_name_the_prose_shows_is_glued_on_the_real_data_too(chapter):
    text = (ROOT / "book" / f"{chapter}.md").read_text()
    prose = CELL.sub("", text)
    glued = _glued_names(chapter)
    problems = []
    for match in GLUE_ROLE.finditer(prose):
        name, kind = match["name"], match["kind"] or "any"
        for path in ("real", "standin"):
            functions = {f for pattern, f in glued["both"] | glued[path] if re.fullmatch(pattern, name)}
            if not functions:
                problems.append(f"{name!r} is not glued when the {path} data ran")
            elif kind == "md" and functions != {"glue_markdown"}:
                problems.append(f"{{glue:md}}`{name}` is glued by {sorted(functions)}, not glue_markdown")
    assert not problems, f"{chapter}: " + "; ".join(problems)


def test_the_prose_names_no_stand_in_as_fact():
    """A sentence about the run's data is glued (computed), never fixed text."""
    for chapter in CHAPTERS:
        prose = CELL.sub("", (ROOT / "book" / f"{chapter}.md").read_text())
        for phrase in ("this is the offline stand-in", "the offline synthetic stand-in",
                       "on these images the clutter", "the stand-in cannot tell"):
            assert phrase not in prose.lower(), (chapter, phrase)


def _text_cells(chapter: str) -> list[str]:
    """The chapter's hidden cells that pick its run-dependent sentences (glue_markdown)."""
    text = (ROOT / "book" / f"{chapter}.md").read_text()
    return [source for match, source in zip(CELL.finditer(text), _cell_sources(text))
            if "remove-input" in match.group(0).split("\n", 3)[1] and "glue_markdown(" in source]


def _imported(chapter: str) -> dict:
    """The names a chapter's cells import (its functions and constants), as its text cells see them."""
    text = (ROOT / "book" / f"{chapter}.md").read_text()
    namespace: dict = {}
    for source in _cell_sources(text):
        imports = [node for node in ast.parse(source).body if isinstance(node, (ast.Import, ast.ImportFrom))]
        exec(compile(ast.Module(imports, type_ignores=[]), chapter, "exec"), namespace)
    return namespace


def _measured(data) -> dict:
    """What the chapters' earlier cells left behind, as plain numbers, for ``data``."""
    import pandas as pd

    return dict(
        data=data, profile=Profile("quick", "test"), n_masked=1_000, area=0.2, before=0.2,
        after=0.5, fixed=0.3, n_views=1_000, self_share=torch.tensor([0.001, 0.003]),
        shares={"supervised ViT (labels)": torch.tensor([0.3, 0.4]), "DINO teacher": torch.tensor([0.5, 0.5])},
        matched_margin=0.03, matched_se=0.008, standard_error=0.01, knn_margin=0.05, dino_acc=0.41, random_acc=0.33,
        trainer=SimpleNamespace(step=3_072), seeds=[0, 1],
        model=SimpleNamespace(config=SimpleNamespace(dim=64)), teacher=SimpleNamespace(config=SimpleNamespace(dim=32)),
        heads_on_object=pd.DataFrame({"DINO teacher": {"head 1": 0.3, "head 2": 0.45},
                                      "before training": {"head 1": 0.2, "head 2": 0.21}}), seed_gains=[0.021, -0.004],
        gain_met=False, teacher_train_acc=0.8, teacher_acc=0.6, deit_acc=0.45,
        runs={"soft": {"mode": "soft", "tau": 2.0, "alpha": 0.7}}, main="soft",
        gain=0.009, loss_gain=0.012, loss_se=0.004, token_gain=-0.003, token_se=0.004,
        dist_agree=0.70, cls_agree=0.705, pulled=False,
        cos=pd.Series({"input": 0.1, "block 1": 0.999, "output": 1.0}),
        ablation=pd.DataFrame([{"arm": arm, "seed": seed, "epoch": 15, "train_loss": loss, "test_loss": 1.4,
                                "train_acc": 0.6, "test_acc": 0.5}
                               for arm, loss in (("no augmentation", 0.9), ("crop + flip + smoothing", 1.3))
                               for seed in (0, 1)]),
        comparison=pd.DataFrame({"parameters": [200_000, 140_000], "multiply-adds": [3_700_000, 3_600_000],
                                 "test accuracy": [0.6, 0.6], "test loss": [1.2, 1.2], "seconds": [20.0, 29.0]},
                                index=["ViT (chapter 6)", "Swin"]),
        n_test=2_000)


def _run_text_cells(data) -> dict[str, str]:
    """{glued name: Markdown} from every chapter's text cells, run after ``data``'s numbers."""
    from vitcourse.report import fmt

    glued: dict[str, str] = {}
    capture = glued.__setitem__
    for chapter in CHAPTERS:
        cells = _text_cells(chapter)
        assert cells, f"{chapter} has no hidden cell that glues its run-dependent sentences"
        imported = _imported(chapter)
        for source in cells:
            namespace = {**imported, **_measured(data), "fmt": fmt, "glue_markdown": capture,
                         "report": SimpleNamespace(glue_markdown=capture)}
            exec(compile(source, chapter, "exec"), namespace)
    return glued


def test_the_run_dependent_sentences_read_true_on_the_real_data(real):
    glued = _run_text_cells(real)
    prose = "".join(CELL.sub("", (ROOT / "book" / f"{c}.md").read_text()) for c in CHAPTERS)
    assert set(glued) == {m["name"] for m in GLUE_ROLE.finditer(prose) if m["kind"] == "md"}
    for name, text in glued.items():
        assert "stand-in" not in text and "synthetic" not in text, (name, text)
    for name in ("readout_data_note", "swin_data_note", "masks_note", "on_object_note"):
        assert "the real CIFAR-10" in glued[name], glued[name]
    assert "not measured" in glued["on_object_note"]
    # the numbers given decide the verdicts: no claim the run did not make
    assert glued["gain_note"].startswith("That falls short of the bar")
    assert glued["gain_per_seed"] == "+2.1 with seed 0, \u22120.4 with seed 1"
    assert glued["hard_note"].startswith("On those images a hard target would teach the teacher's errors")
    assert glued["mode_note"] == "soft distillation here"                             # as runs says
    assert glued["pull_note"] == "here training did not pull them closer."
    assert glued["gain_note"].endswith("at least 2 points, more than two standard errors above zero, "
                                       "and a gain with each seed.")
    assert glued["loss_verdict"] == ("(b) − (a) = +1.2 ± 0.4 points (paired), more than two standard "
                                     "errors above zero.")
    assert glued["token_verdict"] == ("(c) − (b) = −0.3 ± 0.4 points (paired), within two standard errors "
                                      "of zero: this run cannot tell whether the token adds anything to "
                                      "the loss.")
    assert glued["token_note"].startswith("So this run cannot separate (b) from (c)")
    assert glued["summary_note"] == ("(c) − (a) = +0.9 points; "
                                     "whether the token adds to the loss, it cannot tell.")
    assert glued["summary_loss_note"] == ("The loss alone, (b), changed accuracy by +1.2 points over (a), "
                                          "about as much.")
    assert glued["one_head_note"].startswith("classic knowledge distillation")    # soft, as runs says
    assert glued["vs_cost_note"].startswith("Swin has 0.7× the parameters of ViT (chapter 6)")
    assert glued["agree_note"] == "about as often as"
    assert "second CLS token" in glued["copy_note"]
    assert "second CLS token" in glued["summary_rows_note"]
    assert glued["knn_note"].startswith("That clears the bar of 5.0 points (the larger of 5.0 points, a "
                                        "floor the quick recipe was chosen to clear on held-out "
                                        "training images, and three paired standard errors, "
                                        "3 × 1.00 = 3.0): with no label at all")
    assert glued["matched_note"].endswith("this gain is one of the chapter's claims: three standard "
                                          "errors, and a floor, so that a gain too small to matter "
                                          "never counts however many images make it significant.")
    assert "3,072 steps" in glued["dino_shows_note"]


def test_the_same_sentences_name_the_stand_in_when_it_ran():
    glued = _run_text_cells(SimpleNamespace(name="synthetic-cifar-clutter", synthetic=True))
    for name in ("readout_data_note", "swin_data_note", "masks_note", "expect_note", "deit_limits_note"):
        assert "stand-in" in glued[name], (name, glued[name])
    assert glued["on_object_note"].startswith("On 1,000 test images the object covers 20.0 %")
    assert ("It is also twice as wide as the teacher (width 64 against 32), so this compares two "
            "recipes") in glued["on_object_note"]
    assert "more than two standard errors of the paired difference" in glued["on_object_note"]
    assert glued["heads_note"].startswith("Head 1 puts 30.0 % and head 2 45.0 % of its CLS attention on "
                                          "the objects (which cover 20.0 % of the area)")
    assert "1 of the 2 heads puts at least twice that share there." in glued["heads_note"]
    assert glued["gain_note"].startswith("That falls short of the bar")


# Each assertion whose margin was set on the stand-in's quick runs, by chapter: it runs only
# when the stand-in ran (the text of its test, as the chapter writes it).
STANDIN_MARGINS = {
    "06_full_vit_cifar": ['(summary["test accuracy"] > chance + 0.15).all()'],
    "07_attention_maps_dino": ["attention_follows_objects(after, area, fixed)",
                               "after - before >= matched_margin",
                               "dino_acc - random_acc >= knn_margin"],
    "08_deit": ["teacher_acc - base_acc >= 0.1", "gain_met", "pulled"],
    "09_swin": ["swin_acc > chance + 0.15"],
}
# Claims asserted on any data, each with its reason in a comment above it.
ANY_DATA = {
    "06_full_vit_cifar": ['(summary["test accuracy"] > floor).all()'],
    "08_deit": ["similarity.loc['output', trained] > similarity.loc['input', trained]"],
    "09_swin": ["swin_acc > chance + 4 * binomial_se(chance, n_test)"],
}


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_stand_in_margins_are_asserted_only_on_the_stand_in(chapter):
    text = (ROOT / "book" / f"{chapter}.md").read_text()
    found: list = []
    for source in _cell_sources(text):
        _walk(ast.parse(source).body, "both", found)
    asserts = {ast.unparse(node.test): path for node, path, _ in found if isinstance(node, ast.Assert)}
    for claim in STANDIN_MARGINS.get(chapter, []):
        assert asserts.get(ast.unparse(ast.parse(claim, mode="eval").body)) == "standin", (chapter, claim)
    for claim in ANY_DATA.get(chapter, []):
        key = ast.unparse(ast.parse(claim, mode="eval").body)
        assert asserts.get(key) == "both", (chapter, claim)
        before = text[:text.index("assert " + claim.replace("'", '"'))].splitlines()[-8:]
        assert any("on any data" in line.lower() for line in before if line.lstrip().startswith("#")), claim


# ---------------------------------------------------------------------------------------------
# Assignment 3 grades the same with the real data set on disk, and reads none of it
# ---------------------------------------------------------------------------------------------

def test_assignment3_grades_in_full_with_the_real_data_and_touches_no_data(real, monkeypatch):
    import vitcourse.data as data_package
    from vitcourse.data import loaders

    def refuse(*args, **kwargs):
        raise AssertionError("assignment 3 must not load a data set")

    for module in (data_package, loaders):
        for name in ("load_cifar10", "load_fashion_mnist", "load_standin"):
            monkeypatch.setattr(module, name, refuse)
    results = run_assignment("assignment3")
    assert len(results) == 10 and all(results.values()), results
    assert not any(run_assignment("assignment3", released=True).values())
