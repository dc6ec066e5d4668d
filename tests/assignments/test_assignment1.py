"""Assignment 1's graded cells judge right and wrong answers as intended.

The instructor source (solutions/assignment1/assignment1.md) is read with jupytext and its
code cells are run in order, in-process, in one fresh namespace per run (no kernel: fast).
Answer cells can be swapped for other implementations, so we check that the reference gets
every point, the untouched release gets none, and plausible wrong answers (an unstable
softmax, a cutter that skips the swap, ...) pass the visible tests but lose the hidden ones —
also when earlier student code has sabotaged numpy's and Python's checking tools.
"""

from __future__ import annotations

import builtins
import re

import numpy as np
import pytest

from tests.support.assignments import cells_of, hidden_regions, meta as _meta, release as _release, run_assignment as _run

ASSIGNMENT = "assignment1"


def _cells():
    return cells_of(ASSIGNMENT)


def run_assignment(answers: dict[str, str] | None = None, release: bool = False) -> dict[str, bool]:
    return _run(ASSIGNMENT, answers, released=release)


UNSTABLE_SOFTMAX = '''
def softmax(x, axis=-1):
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)
'''

NO_SWAP_CUTTER = '''
def extract_patches(images, patch_size):
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError("sides must be multiples of patch_size")
    folded = images.reshape(n, h // p, p, w // p, p, c)
    return folded.reshape(n, (h // p) * (w // p), p * p * c)   # the swap is missing
'''

LAYER_NORM_EPS_OUTSIDE_ROOT = '''
def layer_norm(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    return gamma * (x - mean) / (x.std(axis=-1, keepdims=True) + eps) + beta
'''

LAYER_NORM_UNBIASED = '''
def layer_norm(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    return gamma * (x - mean) / np.sqrt(x.var(axis=-1, ddof=1, keepdims=True) + eps) + beta
'''

ATTENTION_2D_ONLY = '''
def attention(Q, K, V):
    weights = softmax(Q @ K.T / np.sqrt(Q.shape[-1]), axis=-1)
    return weights @ V, weights
'''

ATTENTION_SCALED_BY_VALUE_WIDTH = '''
def attention(Q, K, V):
    weights = softmax(Q @ K.swapaxes(-1, -2) / np.sqrt(V.shape[-1]), axis=-1)
    return weights @ V, weights
'''

POSITIONS_NO_CHECKS = '''
def sinusoidal_positions(n_positions, width):
    angles = np.arange(n_positions)[:, None] / 10000.0 ** (np.arange(0, width, 2) / width)
    codes = np.zeros((n_positions, width))
    codes[:, 0::2] = np.sin(angles)
    codes[:, 1::2] = np.cos(angles)[:, : width // 2]
    return codes

def sinusoidal_positions_2d(n_rows, n_cols, width):
    half = width // 2
    rows = np.repeat(np.arange(n_rows), n_cols)
    cols = np.tile(np.arange(n_cols), n_rows)
    return np.concatenate([sinusoidal_positions(n_rows, half)[rows], sinusoidal_positions(n_cols, half)[cols]], 1)
'''

SABOTAGE = '''
import builtins, numpy
numpy.allclose = lambda *a, **k: True
numpy.array_equal = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
numpy.testing.assert_array_equal = lambda *a, **k: None
class _Harmless(Exception):
    pass
builtins.AssertionError = _Harmless
builtins.abs = lambda x: 0
'''


def test_reference_solution_gets_every_point():
    results = run_assignment()
    assert len(results) == 12
    assert all(results.values()), results


def test_total_points_match_the_intro_table():
    points = {_meta(c)["grade_id"]: _meta(c)["points"] for c in _cells() if _meta(c).get("grade")}
    assert sum(points.values()) == 20
    intro = _cells()[0].source
    assert "**20**" in intro and "**14**" in intro and "**6**" in intro
    per_question = {q: sum(v for k, v in points.items() if k.startswith(q)) for q in ("q1", "q2", "q3", "q4", "q5")}
    assert per_question == {"q1": 3, "q2": 4, "q3": 3, "q4": 5, "q5": 5}
    for q, total in per_question.items():
        assert re.search(rf"^## {q} .*\({total} points\)$", "\n".join(c.source for c in _cells()), re.M), q


def test_untouched_release_scores_zero_without_crashing():
    results = run_assignment(release=True)
    assert not any(results.values()), results


def test_every_hidden_region_checks_with_the_canonical_helpers():
    assert len(hidden_regions(ASSIGNMENT)) == 6


def test_release_keeps_no_solution_or_hidden_test_markers_in_answer_cells():
    for cell in _cells():
        if _meta(cell).get("solution"):
            assert "BEGIN SOLUTION" not in _release(cell.source)
            assert "raise NotImplementedError()" in _release(cell.source)


@pytest.mark.parametrize(
    ("grade_id", "wrong_answer", "question", "passes_visible"),
    [
        ("q1_softmax", UNSTABLE_SOFTMAX, "q1", True),
        ("q5_patches", NO_SWAP_CUTTER, "q5", True),
        ("q3_layer_norm", LAYER_NORM_EPS_OUTSIDE_ROOT, "q3", True),
        ("q3_layer_norm", LAYER_NORM_UNBIASED, "q3", False),
        ("q2_attention", ATTENTION_2D_ONLY, "q2", True),
        ("q2_attention", ATTENTION_SCALED_BY_VALUE_WIDTH, "q2", True),
        ("q4_positions", POSITIONS_NO_CHECKS, "q4", True),
    ],
    ids=["unstable-softmax", "no-swap-cutter", "eps-outside-root", "unbiased-variance",
         "attention-2d-only", "scaled-by-dv", "no-width-checks"],
)
@pytest.mark.parametrize("sabotaged", [False, True], ids=["honest", "sabotaged"])
def test_wrong_answer_loses_the_hidden_points(grade_id, wrong_answer, question, passes_visible, sabotaged,
                                              monkeypatch):
    with monkeypatch.context() as patch:
        # The sabotage really patches numpy and builtins in this process: undo it afterwards.
        for module, names in ((np, ("allclose", "array_equal")), (np.testing, ("assert_allclose", "assert_array_equal")),
                              (builtins, ("AssertionError", "abs"))):
            for name in names:
                patch.setattr(module, name, getattr(module, name))
        # A cheating student sabotages the checking tools in the same answer cell.
        results = run_assignment({grade_id: (SABOTAGE if sabotaged else "") + wrong_answer})
    hidden = [k for k in results if k.startswith(question) and k.endswith("_hidden")]
    visible = [k for k in results if k.startswith(question) and k.endswith("_visible")]
    if passes_visible or sabotaged:  # sabotage makes np.allclose-based visible tests pass anyway
        assert all(results[k] for k in visible), results
    assert not any(results[k] for k in hidden), results
    others = {k: v for k, v in results.items() if not k.startswith(question)}
    assert all(others.values()), others
