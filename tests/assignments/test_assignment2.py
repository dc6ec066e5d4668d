"""Assignment 2's graded cells judge right and wrong answers as intended.

The reference solution trains both models for real (quick profile: about 30 s on 2 cores), so
each scenario runs the notebook once, module-scoped.
"""

from __future__ import annotations

import re

import pytest

from tests.support.assignments import cells_of, manual_points, meta, points, release, run_assignment

ASSIGNMENT = "assignment2"

UNTRAINED_WITH_CLAIMED_ACCURACY = {
    # A real model, never trained, with a made-up accuracy: the visible test cannot tell.
    "q7_train": "q7_val_acc = 0.99",
    "q8_cnn": ("model_cnn = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 26 * 26, 10)).to(device)\n"
               "q8_val_acc = 0.99"),
}

NO_MEAN_POOLING = '''
class FirstViT(nn.Module):
    """Forgets to average the 49 tokens: one answer per patch, (B, 49, 10)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(16, 64)
        self.positions = nn.Parameter(torch.zeros(49, 64))
        self.attention = nn.MultiheadAttention(64, 4, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(64), nn.LayerNorm(64)
        self.feed_forward = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64))
        self.head = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, 10))

    def forward(self, patches, return_attention=False):
        x = self.embed(patches) + self.positions
        mixed, weights = self.attention(x, x, x, average_attn_weights=False)
        x = self.norm2(self.norm1(x + mixed) + self.feed_forward(self.norm1(x + mixed)))
        return (self.head(x), weights) if return_attention else self.head(x)


model_vit = FirstViT().to(device)
'''


@pytest.fixture(scope="module")
def reference():
    namespace: dict = {}
    return run_assignment(ASSIGNMENT, namespace=namespace), namespace


def test_points_add_up_to_the_intro_table():
    per_cell = points(ASSIGNMENT)
    assert sum(per_cell.values()) == 20
    assert manual_points(ASSIGNMENT) == {"q10_written": 2}
    intro = cells_of(ASSIGNMENT)[0].source
    for question in ("q6", "q7", "q8", "q9", "q10"):
        total = per_cell[f"{question}_visible"] + per_cell[f"{question}_hidden"]
        assert re.search(rf"^\| {question} \|.*\| {total} \|$", intro, re.M), f"{question}: {total} points"
    assert re.search(r"^\| q10 written \|.*\| 2 \|$", intro, re.M)
    assert re.search(r"^\| \| \*\*Total\*\* \|.*\| \*\*22\*\* \|$", intro, re.M)


def test_reference_solution_gets_every_point(reference):
    results, namespace = reference
    assert results and all(results.values()), {k: v for k, v in results.items() if not v}
    assert namespace["q10_vit_params"] == 42_506
    assert namespace["data"].name in ("fashion-mnist", "synthetic-fashion")


def test_reference_accuracies_clear_the_thresholds_with_room(reference):
    from vitcourse.assignment2 import threshold

    _, namespace = reference
    name = namespace["data"].name
    assert namespace["q7_val_acc"] >= threshold(name, "ViT") + 0.05
    assert namespace["q8_val_acc"] >= threshold(name, "CNN") + 0.05
    assert namespace["q7_val_acc"] < 0.95, "the stand-in must stay below 100 % for the ViT"


def test_untouched_release_scores_zero_without_crashing():
    results = run_assignment(ASSIGNMENT, released=True)
    assert set(results) == set(points(ASSIGNMENT))
    assert not any(results.values()), {k: v for k, v in results.items() if v}


def test_claimed_accuracy_of_an_untrained_model_loses_the_hidden_points():
    results = run_assignment(ASSIGNMENT, UNTRAINED_WITH_CLAIMED_ACCURACY)
    assert results["q7_visible"] and results["q8_visible"], "the made-up numbers look plausible to the visible tests"
    assert not results["q7_hidden"] and not results["q8_hidden"]
    assert results["q6_hidden"], "q6 is about the architecture, which is right"


def test_wrong_output_shape_loses_q6():
    results = run_assignment(ASSIGNMENT, {"q6_model": NO_MEAN_POOLING, "q7_train": "q7_val_acc = 0.5",
                                          "q8_cnn": "model_cnn = None\nq8_val_acc = 0.5"})
    assert not results["q6_visible"] and not results["q6_hidden"]


def test_release_blanks_every_answer():
    for cell in cells_of(ASSIGNMENT):
        if meta(cell).get("solution") and cell.cell_type == "code":
            blank = release(cell.source)
            assert "BEGIN SOLUTION" not in blank and "raise NotImplementedError()" in blank


def test_every_hidden_region_checks_with_the_canonical_helpers():
    from tests.support.assignments import hidden_regions

    assert len(hidden_regions("assignment2")) == 5


def test_grading_images_cost_the_reference_models_little_and_defeat_a_lookup(reference):
    """The accuracy threshold is checked on images the submission never had (each test image
    given faint noise, by the course's secret seed). The trained reference models lose less than
    3 points there (measured with 3 noise seeds: the stand-in's under 1, the real Fashion-MNIST's
    ViT up to 2.3, bench/calibrate_assignment2.py), far less than the thresholds' margin below the
    worst seed; a lookup table of the public test split falls to chance."""
    import torch

    from autograder import grading
    from vitcourse import assignment2 as a2

    _, namespace = reference
    split = a2.load_split()
    for seed in (1, 2, 3):
        unseen = a2.grading_images(split.x_test, seed)
        assert not torch.equal(unseen, split.x_test)
        for model, inputs in ((namespace["model_vit"], a2.vit_inputs), (namespace["model_cnn"], a2.cnn_inputs)):
            public = grading.accuracy(model, inputs(split.x_test), split.y_test)
            graded = grading.accuracy(model, inputs(unseen), split.y_test)
            assert public - graded < 0.03, (seed, type(model).__name__, public, graded)

    table = {image.numpy().tobytes(): int(label) for image, label in zip(split.x_test, split.y_test)}

    class Lookup(torch.nn.Module):
        """Memorised the public test split; answers class 0 for anything else."""

        def forward(self, images):
            out = torch.zeros(len(images), 10)
            for row, image in enumerate(images.reshape(len(images), 28, 28)):
                out[row, table.get(image.numpy().tobytes(), 0)] = 1.0
            return out

    lookup = Lookup()
    assert grading.accuracy(lookup, split.x_test.unsqueeze(1), split.y_test) == 1.0
    chance = max(float((split.y_test == c).float().mean()) for c in range(10))
    assert grading.accuracy(lookup, a2.grading_images(split.x_test, 1).unsqueeze(1), split.y_test) <= chance + 0.01


def test_a_nearest_neighbour_lookup_of_the_test_split_earns_no_accuracy_points():
    """Untrained ViT and CNN, each wrapped in a lookup of the public test split: their forward
    scores 1.0 on it, but the grader measures their weights in its own copy of the architecture."""
    from tests.support.assignment2_samples import LOOKUP_CNN, LOOKUP_VIT

    from autograder import grading

    grading.IN_PROCESS_FLAGS.clear()
    namespace: dict = {}
    results = run_assignment(ASSIGNMENT, {"q7_train": LOOKUP_VIT, "q8_cnn": LOOKUP_CNN}, namespace=namespace)
    assert namespace["q7_val_acc"] == 1.0 and namespace["q8_val_acc"] == 1.0
    assert results["q6_hidden"] and results["q7_visible"] and results["q8_visible"]
    assert not results["q7_hidden"] and not results["q8_hidden"] and not results["q9_hidden"]
    assert not grading.IN_PROCESS_FLAGS, "untrained weights score alike everywhere: nothing to flag"
