"""Assignment 3's graded cells judge right and wrong answers as intended.

Run in-process from the instructor source (see assignment_runner): the reference gets every
point, the untouched release gets none, and plausible wrong answers — each one passing its
question's visible test where that is possible — lose the hidden points, also when the same
cell has sabotaged torch's comparison functions and Python's AssertionError.
"""

from __future__ import annotations

import builtins
import re

import pytest
import torch

from tests.support.assignments import cells_of, hidden_regions, meta, points, release, run_assignment

ASSIGNMENT = "assignment3"

# q11: weights taken in train mode, so attention dropout changes them from call to call.
CLS_MAP_IN_TRAIN_MODE = '''
def cls_attention_map(model, image):
    images = image if image.dim() == 4 else image.unsqueeze(0)
    side = model.config.image_size // model.config.patch_size
    with torch.no_grad():
        _, weights = model.forward_features(images, return_weights=True)
    return weights[-1][0, :, 0, 1:].reshape(-1, side, side)
'''
# q11: off by one token: drops the last patch instead of the CLS token's weight on itself.
CLS_MAP_OFF_BY_ONE = '''
def cls_attention_map(model, image):
    images = image if image.dim() == 4 else image.unsqueeze(0)
    side = model.config.image_size // model.config.patch_size
    weights = model.attention_maps(images)[-1]
    return weights[0, :, 0, :-1].reshape(-1, side, side)
'''
# q12: only right for square maps (uses the height for both sides).
WINDOWS_SQUARE_ONLY = '''
def window_partition(x, window):
    b, h, w, c = x.shape
    grid = x.reshape(b, h // window, window, h // window, window, c)
    return grid.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c)

def window_reverse(windows, window, height, width):
    c = windows.shape[-1]
    grid = windows.reshape(-1, height // window, height // window, window, window, c)
    return grid.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, height, c)
'''
# q13: the rows' bands reused for the columns: right for square maps only.
MASK_SQUARE_ONLY = '''
def shifted_window_mask(height, width, window, shift):
    if not 0 <= shift < window:
        raise ValueError("bad shift")
    wrapped_row = torch.arange(height) >= height - shift if shift else torch.zeros(height, dtype=torch.bool)
    labels = (wrapped_row[:, None].int() * 2 + wrapped_row[None, :height].int()).float()
    windows = labels.view(height // window, window, height // window, window).permute(0, 2, 1, 3).reshape(-1, window * window)
    return windows[:, :, None] != windows[:, None, :]
'''
# q14: soft loss averaged over every (sample, class) entry instead of over samples.
SOFT_LOSS_MEAN_REDUCTION = '''
def distillation_loss(cls_logits, dist_logits, labels, teacher_logits, mode="hard", tau=1.0, alpha=0.5):
    if mode not in ("hard", "soft") or cls_logits.shape != teacher_logits.shape:
        raise ValueError("bad input")
    teacher_logits = teacher_logits.detach()
    if mode == "hard":
        return 0.5 * F.cross_entropy(cls_logits, labels) + 0.5 * F.cross_entropy(dist_logits, teacher_logits.argmax(-1))
    kl = F.kl_div(F.log_softmax(dist_logits / tau, -1), F.log_softmax(teacher_logits / tau, -1),
                  reduction="mean", log_target=True)
    return (1 - alpha) * F.cross_entropy(cls_logits, labels) + alpha * tau**2 * kl
'''
# q14: right values, but the gradient flows into the teacher.
LOSS_TEACHER_NOT_FROZEN = '''
def distillation_loss(cls_logits, dist_logits, labels, teacher_logits, mode="hard", tau=1.0, alpha=0.5):
    if mode not in ("hard", "soft") or cls_logits.shape != teacher_logits.shape:
        raise ValueError("bad input")
    if mode == "hard":
        return 0.5 * F.cross_entropy(cls_logits, labels) + 0.5 * F.cross_entropy(dist_logits, teacher_logits.argmax(-1))
    kl = F.kl_div(F.log_softmax(dist_logits / tau, -1), F.log_softmax(teacher_logits / tau, -1),
                  reduction="batchmean", log_target=True)
    return (1 - alpha) * F.cross_entropy(cls_logits, labels) + alpha * tau**2 * kl
'''
# q15: a (2M) × (2M) grid instead of (2M - 1) × (2M - 1): rows of the table are skipped.
INDEX_WRONG_STRIDE = '''
def relative_position_index(window):
    rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()])
    offsets = coords[:, :, None] - coords[:, None, :] + (window - 1)
    return offsets[0] * (2 * window) + offsets[1]
'''

SABOTAGE = '''
import builtins
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.isclose = lambda *a, **k: torch.tensor(True)
class _Harmless(Exception):
    pass
builtins.AssertionError = _Harmless
'''


def test_reference_solution_gets_every_point():
    results = run_assignment(ASSIGNMENT)
    assert len(results) == 10
    assert all(results.values()), results


def test_untouched_release_scores_zero_without_crashing():
    results = run_assignment(ASSIGNMENT, released=True)
    assert len(results) == 10 and not any(results.values()), results


def test_points_match_the_intro_table():
    per_question = {q: sum(v for k, v in points(ASSIGNMENT).items() if k.startswith(q))
                    for q in ("q11", "q12", "q13", "q14", "q15")}
    assert per_question == {q: 4 for q in per_question}
    intro = cells_of(ASSIGNMENT)[0].source
    assert "**20**" in intro and "**15**" in intro and "**5**" in intro
    text = "\n".join(c.source for c in cells_of(ASSIGNMENT))
    for q in per_question:
        assert re.search(rf"^## {q} .*\(4 points\)$", text, re.M), q


def test_every_hidden_region_checks_with_the_canonical_helpers():
    assert len(hidden_regions(ASSIGNMENT)) == 5


def test_release_blanks_every_answer():
    for cell in cells_of(ASSIGNMENT):
        if meta(cell).get("solution"):
            assert "BEGIN SOLUTION" not in release(cell.source)
            assert "raise NotImplementedError()" in release(cell.source)


@pytest.mark.parametrize(
    ("grade_id", "wrong_answer", "question", "passes_visible", "dependents"),
    [
        ("q11_cls_map", CLS_MAP_IN_TRAIN_MODE, "q11", True, ()),
        ("q11_cls_map", CLS_MAP_OFF_BY_ONE, "q11", True, ()),
        ("q12_windows", WINDOWS_SQUARE_ONLY, "q12", True, ("q13",)),
        ("q13_mask", MASK_SQUARE_ONLY, "q13", True, ()),
        ("q14_loss", SOFT_LOSS_MEAN_REDUCTION, "q14", True, ()),
        ("q14_loss", LOSS_TEACHER_NOT_FROZEN, "q14", True, ()),
        ("q15_index", INDEX_WRONG_STRIDE, "q15", False, ()),
    ],
    ids=["cls-map-train-mode", "cls-map-off-by-one", "windows-square-only", "mask-square-only",
         "soft-loss-mean", "teacher-not-frozen", "index-wrong-stride"],
)
@pytest.mark.parametrize("sabotaged", [False, True], ids=["honest", "sabotaged"])
def test_wrong_answer_loses_the_hidden_points(grade_id, wrong_answer, question, passes_visible, dependents,
                                              sabotaged,
                                              monkeypatch):
    with monkeypatch.context() as patch:
        for module, names in ((torch, ("allclose", "equal", "isclose")), (builtins, ("AssertionError",))):
            for name in names:
                patch.setattr(module, name, getattr(module, name))  # undone after the run
        results = run_assignment(ASSIGNMENT, {grade_id: (SABOTAGE if sabotaged else "") + wrong_answer})
    hidden = [k for k in results if k.startswith(question + "_") and k.endswith("_hidden")]
    visible = [k for k in results if k.startswith(question + "_") and k.endswith("_visible")]
    if passes_visible:
        assert all(results[k] for k in visible), results
    assert hidden and not any(results[k] for k in hidden), results
    # Questions built on this one (q13 cuts its label map with q12's window_partition) may fail too.
    others = {k: v for k, v in results.items() if not k.startswith(tuple(q + "_" for q in (question, *dependents)))}
    assert all(others.values()), others


def test_the_library_answers_pass_every_hidden_test():
    """The course's own modules and assignment 3 agree on every convention (one truth, two checks)."""
    answers = {
        "q11_cls_map": "from vitcourse.attention_maps import cls_attention_map",
        "q12_windows": "from vitcourse.swin import window_partition, window_reverse",
        "q13_mask": "from vitcourse.swin import shifted_window_mask",
        "q14_loss": "from vitcourse.deit import distillation_loss",
        "q15_index": "from vitcourse.swin import relative_position_index",
    }
    results = run_assignment(ASSIGNMENT, answers)
    assert all(results.values()), results
