"""Assignment 2 (q6-q10) sample submissions, graded in one parallel batch, each score asserted.

The batch runs alone on the machine (tests/conftest.py marks it serial) but without a CPU hog:
the busy-machine case of assignment 2 is graded by test_autograder_hostile's batch.

A correct notebook trains two models (~30 s in the quick profile on 2 cores), so the generic
breaking samples hit the *first* answer cell (nothing trained yet: cheap, and 0 points is
then the right score); assignment 1 and the demo show points kept before a late failure.
"""

from __future__ import annotations

import pytest

from autograder.samples.submissions import Sample, build_samples, generic_samples, with_answer, with_answers, with_code
from tests.support.autograding import cli, gradebook_totals, write_inbox

pytestmark = pytest.mark.slow
ASSIGNMENT = "assignment2"
# A training cell takes ~15 s on an idle 2-core machine; the infinite loop costs one worker the
# 60 s cell timeout while the other grades the rest.
LIMITS = ["--cell-timeout", "60", "--budget", "600", "--memory-mb", "4096"]
# The CNN (q8) needs only the setup cell, so it still scores when q6 is broken and the kernel lives.
CNN_ONLY = 4.0
KERNEL_SURVIVES = {"exception_in_cell", "infinite_loop", "memory_bomb", "edited_locked_cell"}
# Tampering, retyped cells, sys.exit and interrupt-proof loops are covered by assignment 1 and the demo.
GENERIC = KERNEL_SURVIVES | {"correct", "os_exit", "deleted_grade_cell"}
# Megabytes of output instead of a q6 answer (cheaper than after a full training run).
HUGE_OUTPUT = "for i in range(300_000):\n    print('spam' * 10, i)"

TRAIN_VIT = """history_vit = fit(model_vit, patches_train, data.y_train, patches_test, data.y_test,
                  epochs=plan.epochs, batch_size=64, lr=1e-3, device=device)
"""
HARD_CODED_ACCURACY = TRAIN_VIT + "q7_val_acc = 0.99  # looks great, is not what the model scores\n"
UNTRAINED_MODEL = "q7_val_acc = round(evaluate(model_vit, patches_test, data.y_test)[1], 3)  # no fit()\n"
# Per-patch logits (B, 49, 10) instead of pooled (B, 10).
WRONG_SHAPES_FORWARD = '''class FirstViT(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(16, 64)
        self.head = nn.Linear(64, 10)

    def forward(self, patches, return_attention=False):
        return self.head(self.embed(patches))


model_vit = FirstViT().to(device)
'''

# No training: a lookup table of the public test split stands in for the model's forward. The
# grader measures model_vit's weights in its own copy of the architecture: untrained, so q7_val_acc
# (1.0) disagrees and the threshold is missed (q7 hidden -3); its heads learned nothing (q9 hidden -3).
MEMORISED_TEST_SPLIT = """_table = {p.numpy().tobytes(): int(y) for p, y in zip(patches_test, data.y_test)}
_forward = model_vit.forward


def _lookup(patches, return_attention=False):
    if return_attention:
        return _forward(patches, return_attention=True)
    out = _forward(patches).detach().clone()
    for row, p in enumerate(patches):
        label = _table.get(p.numpy().tobytes())
        if label is not None:
            out[row] = -100.0
            out[row, label] = 100.0
    return out


model_vit.forward = _lookup
q7_val_acc = round(evaluate(model_vit, patches_test, data.y_test)[1], 3)
print(q7_val_acc)
"""


# Correct work written differently from the reference: a (1, 49, 64) position table and its own
# layer order of assignments, a *fresh* model made and trained in q7 (rebinding model_vit), a CNN
# class with named layers trained and then wrapped in another module, attention read off the
# layers, other variable flow in q10. Every test cell must grade the objects as they are then.
HONEST_VARIANT = {
    "q6_model": '''class FirstViT(nn.Module):
    """Patches (B, 49, 16) -> logits (B, 10)."""

    def __init__(self):
        super().__init__()
        self.positions = nn.Parameter(torch.zeros(1, 49, 64))   # broadcast over the batch
        self.embed = nn.Linear(16, 64)
        self.attention = nn.MultiheadAttention(64, 4, batch_first=True)
        self.norm1 = nn.LayerNorm(64)
        self.feed_forward = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64))
        self.norm2 = nn.LayerNorm(64)
        self.head = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, 10))
        nn.init.normal_(self.positions, std=0.02)

    def forward(self, patches, return_attention=False):
        tokens = self.embed(patches) + self.positions
        mixed, weights = self.attention(tokens, tokens, tokens, average_attn_weights=False)
        tokens = self.norm1(tokens + mixed)
        tokens = self.norm2(tokens + self.feed_forward(tokens))
        logits = self.head(tokens.mean(1))
        return (logits, weights) if return_attention else logits


model_vit = FirstViT()
''',
    "q7_train": '''torch.manual_seed(1)
model_vit = FirstViT().to(device)    # a fresh model: the one trained here is the one to grade
fit(model_vit, patches_train, data.y_train, patches_test, data.y_test,
    epochs=plan.epochs, batch_size=64, lr=1e-3, device=device)
_loss, _acc = evaluate(model_vit, patches_test, data.y_test)
q7_val_acc = float(f"{_acc:.3f}")
''',
    "q8_cnn": '''import torch.nn.functional as F


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3), nn.Conv2d(32, 64, 3)
        self.fc1, self.fc2 = nn.Linear(64 * 5 * 5, 64), nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class Wrapped(nn.Module):
    """The same model under another name, as torch.compile or a checkpoint loader gives it."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


cnn = SmallCNN().to(device)
fit(cnn, data.x_train.unsqueeze(1), data.y_train, data.x_test.unsqueeze(1), data.y_test,
    epochs=plan.epochs, batch_size=64, lr=1e-3, device=device)
model_cnn = Wrapped(cnn).eval()
q8_val_acc = round(evaluate(model_cnn, data.x_test.unsqueeze(1), data.y_test)[1], 3)
''',
    "q9_attention": '''def vit_attention(model, patches):
    """(B, 49, 16) -> (B, 4, 49, 49), read off the model's own layers."""
    was_training = model.training
    model.train(False)
    with torch.no_grad():
        tokens = model.embed(patches) + model.positions
        _, weights = model.attention(tokens, tokens, tokens, need_weights=True, average_attn_weights=False)
    model.train(was_training)
    return weights
''',
    "q10_race": '''def _trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


q10_vit_params, q10_cnn_params = _trainable(model_vit), _trainable(model_cnn)
q10_results = dict(ViT=q7_val_acc, CNN=q8_val_acc)
q10_best_model = max(["CNN", "ViT"], key=lambda name: (q10_results[name], name == "ViT"))
''',
}


def assignment2_samples() -> list[Sample]:
    """The issue's list for assignment 2: generic breakers at q6, then the specific ones."""
    chosen = [sample for sample in generic_samples(answer=0) if sample.name in GENERIC]
    return [Sample(s.name, s.build, lambda nb: CNN_ONLY) if s.name in KERNEL_SURVIVES else s
            for s in chosen] + [Sample("huge_output", with_code(HUGE_OUTPUT, keep_solution=False, answer=0),
                                       lambda nb: CNN_ONLY)] + SPECIFIC_SAMPLES


SPECIFIC_SAMPLES = [
    # q7's hidden tests recompute the accuracy: 0.99 disagrees with the model (-3).
    Sample("hard_coded_accuracy", with_answer("q7_train", HARD_CODED_ACCURACY), lambda nb: 17.0),
    # Honest accuracy of an untrained model: agrees, but is far below the threshold (q7 -3),
    # and its attention heads have learned nothing (q9 hidden -3).
    Sample("untrained_model", with_answer("q7_train", UNTRAINED_MODEL), lambda nb: 14.0),
    # Wrong output shape: q6 fails, training it fails (q7), it has no attention to show (q9),
    # and q10 cannot report q7's accuracy; only the CNN (q8) scores.
    Sample("wrong_shapes", with_answer("q6_model", WRONG_SHAPES_FORWARD), lambda nb: 4.0),
    Sample("memorised_test_split", with_answer("q7_train", MEMORISED_TEST_SPLIT), lambda nb: 14.0),
    # Written differently from the reference, rebinding models between test cells: full marks.
    Sample("honest_variant", with_answers(HONEST_VARIANT), lambda nb: 20.0),
]


@pytest.fixture(scope="module")
def graded(released_course):
    course, tmp = released_course(ASSIGNMENT, name="assignment2")
    built = build_samples(course.exercises, course.solutions, ASSIGNMENT, assignment2_samples())
    write_inbox(tmp / "inbox", ASSIGNMENT, built)
    cli(course, "collect", ASSIGNMENT, str(tmp / "inbox"))
    # Both cores, nothing beside: assignment 2 graded on a busy machine is test_autograder_hostile's
    # batch (its trained and tricked samples beside a CPU hog per core, the same limits) and
    # test_lab_validate's correct notebook beside two hogs; the same scores hold there.
    cli(course, "grade", ASSIGNMENT, "--workers", "2", *LIMITS)
    expected = {name.replace("_", "-"): score for name, (_nb, score) in built.items()}
    return course, expected


def test_every_assignment2_sample_gets_its_expected_score(graded):
    course, expected = graded
    assert expected["correct"] == 20.0
    totals = gradebook_totals(course, ASSIGNMENT)
    assert totals == pytest.approx(expected), {s: (totals.get(s), want) for s, want in expected.items()
                                               if totals.get(s) != want}


def test_assignment2_export_names_the_failures(graded):
    course, _expected = graded
    cli(course, "export", ASSIGNMENT)
    reasons = (course.reports(ASSIGNMENT) / "failure_reasons.csv").read_text()
    assert "q7,CheckFailed" in reasons
    assert "not executed: the kernel died" in reasons

