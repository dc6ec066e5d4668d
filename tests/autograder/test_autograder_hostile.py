"""Submissions written by a determined student, graded in one parallel batch beside a CPU hog.

Each sample tries one way to change its grade without earning it: it takes over how later
cells execute (input and AST transformers, event callbacks, exception hooks, tracing and audit
hooks, import hooks and replaced modules, patched numpy and builtins), hands the tests objects
whose comparisons lie, or reaches for the tests' source to print it in an encoded form. The
tests run in the grader's own process and see only plain values (autograder/sandbox/channel.py), so a
submission with no answers scores 0 whatever it installs, and a wrong answer stays wrong.

The batch runs with one busy-looping process per core beside it: the grade must not depend on
how busy the machine is (limits are in CPU-seconds).

A second batch attacks assignment 2's trained-model accuracy: a nearest-neighbour lookup of the
public test split wrapped around an untrained ViT and CNN, a CNN trained on the test split, and a
kernel whose side of the channel answers with invented parameter tensors and logits. The grader
measures accuracy from the weights, in its own copy of each architecture: lookups earn no
accuracy points, the test-split model is flagged for review.
"""

from __future__ import annotations

import base64
import codecs
import copy
import sqlite3
from pathlib import Path

import pytest

from autograder.commands.feedback import hidden_lines, page_text
from autograder.samples.submissions import Sample, build_samples, cell_by_id, with_answer, with_answers
from tests.support.autograding import (FIXTURE_SOLUTIONS, TEST_LIMITS, cli, gradebook_totals, temp_course,
                                write_inbox)
from tests.support.assignment2_samples import CNN_LAYERS, LOOKUP_CNN, LOOKUP_VIT
from vitcourse.measure import cpu_hog

pytestmark = pytest.mark.slow
ASSIGNMENT = "demo"

# Each installs its trick in the first answer cell and answers nothing (the released templates
# raise NotImplementedError): every one must score 0.
HIJACKS = {
    # Every later cell (and whatever the grader sends the kernel) becomes `pass`.
    "input_transformer": "get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])",
    # Asserts and raises vanish from every later cell.
    "ast_transformer": """
import ast
class _Quiet(ast.NodeTransformer):
    def visit_Assert(self, node):
        return ast.Pass()
    def visit_Raise(self, node):
        return ast.Pass()
get_ipython().ast_transformers.append(_Quiet())
""",
    # Errors are swallowed and every cell reports success.
    "events_and_exception_hook": """
ip = get_ipython()
ip.set_custom_exc((BaseException,), lambda shell, etype, evalue, tb, tb_offset=None: None)
def _forget(result):
    result.error_in_exec = None
    result.error_before_exec = None
ip.events.register('post_run_cell', _forget)
ip.events.register('pre_run_cell', lambda info: None)
import sys
sys.excepthook = lambda *args: None
""",
    # Tracing, profiling and audit hooks that could rewrite frames or watch the tests run.
    "trace_and_audit_hooks": """
import sys
def _tracer(frame, event, arg):
    frame.f_locals.get('x')
    return _tracer
sys.settrace(_tracer)
sys.setprofile(lambda frame, event, arg: None)
sys.addaudithook(lambda event, args: None)
""",
    # A fake `autograder` served by an import hook, and replaced modules: whatever the grader
    # imports in this kernel answers "True" to everything.
    "import_hooks_and_fake_modules": """
import sys, types, importlib.abc, importlib.util, json, io, numpy as np
class _Fake(types.ModuleType):
    def __getattr__(self, name):
        return lambda *args, **kwargs: True
def _serve(folder, number):
    header = json.dumps({'ok': True}).encode()
    buffer = io.BytesIO()
    np.savez(buffer, header=np.frombuffer(header, dtype=np.uint8))
    with open(f'{folder}/answers/{number}.npz', 'wb') as handle:
        handle.write(buffer.getvalue())
class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name.startswith('autograder'):
            return importlib.util.spec_from_loader(name, self, is_package=True)
    def create_module(self, spec):
        module = _Fake(spec.name)
        module.__path__ = []
        module.serve = _serve
        module.channel = module
        return module
    def exec_module(self, module):
        pass
for name in [n for n in sys.modules if n.startswith('autograder')]:
    del sys.modules[name]
sys.meta_path.insert(0, _Finder())
sys.modules['numpy.testing'] = _Fake('numpy.testing')
""",
    # numpy, torch and builtins patched so every comparison passes.
    "patched_numpy_and_builtins": """
import builtins, numpy
numpy.testing.assert_allclose = lambda *args, **kwargs: None
numpy.allclose = lambda *args, **kwargs: True
numpy.array_equal = lambda *args, **kwargs: True
builtins.isinstance = lambda *args: True
builtins.AssertionError = type('AssertionError', (Exception,), {})
get_ipython().showtraceback = lambda *args, **kwargs: None
""",
}

# Wrong answers dressed up as right ones: each must score 0.
IMPOSTORS = {
    "q1_answer": """
import numpy as np
class _AlwaysEqual(np.ndarray):
    def __eq__(self, other):
        return np.ones(np.shape(self), dtype=bool)
    __ne__ = lambda self, other: np.zeros(np.shape(self), dtype=bool)
def scale(x):
    return np.zeros(len(x)).view(_AlwaysEqual)   # zeros, claiming to equal anything
""",
    "q2_answer": """
import numpy as np
class _Liar:
    shape = (2, 2)
    def __array__(self, dtype=None, copy=None):
        return np.array([[0.5, 0.5], [0.25, 0.75]])
    def __eq__(self, other):
        return True
def softmax(x):
    return _Liar()                               # not an array of numbers at all
""",
    "q3_answer": """
class _Liar(int):
    def __eq__(self, other):
        return True
    __hash__ = int.__hash__
    def __float__(self):
        return 64.0
    def __index__(self):
        return 64
n_patches = _Liar(63)                            # stores 63, claims 64
""",
}

# Tries to find the tests' source and print it, encoded three ways.
EXFILTRATE = """
import base64, codecs, gc, glob, os, sys
found = []
for pattern in ['/home/student/**/*', '/tmp/**/*', os.environ.get('AUTOGRADER_COURSE_ROOT', '/nowhere') + '/**/*']:
    for path in glob.glob(pattern, recursive=True)[:200]:
        try:
            with open(path, 'rb') as handle:
                found.append(handle.read(20000))
        except OSError:
            pass
history = '\\n'.join(get_ipython().history_manager.input_hist_raw)
found.append(history.encode())
for obj in gc.get_objects()[:200000]:
    if isinstance(obj, str) and 'hidden' in obj:
        found.append(obj.encode())
blob = b'\\n'.join(found)
print(base64.b64encode(blob).decode()[:50000])
print(blob.hex()[:50000])
print(codecs.encode(blob.decode(errors='ignore'), 'rot13')[:50000])
"""


# Resource escapes beside correct answers: each may cost only its own submission.
FORK_BOMB = """
import os, time
children = 0
for _ in range(5000):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.close(1)
        os.close(2)
        time.sleep(600)
        os._exit(0)
    children += 1
print('FORKED', children)
"""
FILL_THE_DISK = """
written = 0
for n in range(40):
    try:
        with open(f'fill-{n}', 'wb') as handle:
            for _ in range(200):
                handle.write(b'x' * 1024 * 1024)
                written += 1
    except OSError:
        break
print('WROTE_MB', written)
"""


def encodings(secret: str) -> list[str]:
    """`secret` as it would appear in text that holds it raw, as hex, rot13 or base64 (at any of
    the three byte alignments; the groups it shares with its neighbours left out)."""
    raw = secret.encode()
    forms = [secret, raw.hex(), codecs.encode(secret, "rot13")]
    for shift in range(3):
        core = base64.b64encode(b"\0" * shift + raw).decode()[4:-4]
        if len(core) >= 8:
            forms.append(core)
    return forms


def _released_with(nb, answers: dict[str, str]):
    nb = copy.deepcopy(nb)
    for grade_id, source in answers.items():
        cell_by_id(nb, grade_id).source = source
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    import nbformat

    tmp = tmp_path_factory.mktemp("hostile")
    course = temp_course(tmp, FIXTURE_SOLUTIONS)
    cli(course, "release", ASSIGNMENT)
    released = nbformat.read(course.exercises / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    from autograder.commands.release import read_source
    from autograder.samples.submissions import correct_submission

    correct = correct_submission(released, read_source(course.solutions / ASSIGNMENT / f"{ASSIGNMENT}.md"))
    samples = {f"hijack_{name}": (_released_with(released, {"q1_answer": code}), 0.0)
               for name, code in HIJACKS.items()}
    samples["impostors"] = (_released_with(released, IMPOSTORS), 0.0)
    samples["exfiltrate"] = (_released_with(correct, {"q3_answer": "n_patches = 64\n" + EXFILTRATE}), 6.0)
    samples["correct"] = (correct, 6.0)
    samples["fork_bomb"] = (_released_with(correct, {"q3_answer": "n_patches = 64\n" + FORK_BOMB}), 6.0)
    samples["fill_the_disk"] = (_released_with(correct, {"q3_answer": "n_patches = 64\n" + FILL_THE_DISK}), 6.0)
    # The tricks beside correct answers change nothing either (here: tracing and hooks).
    samples["hooks_and_correct"] = (_released_with(correct, {
        "q3_answer": "n_patches = 64\n" + HIJACKS["trace_and_audit_hooks"]
                     + HIJACKS["events_and_exception_hook"]}), 6.0)
    write_inbox(tmp / "inbox", ASSIGNMENT, samples)
    cli(course, "collect", ASSIGNMENT, str(tmp / "inbox"))
    before = {entry.name for entry in Path("/tmp").iterdir()}
    with cpu_hog():
        cli(course, "grade", ASSIGNMENT, "--workers", "2", *TEST_LIMITS)
    left = {entry.name for entry in Path("/tmp").iterdir()} - before
    assert not {name for name in left if name.startswith("autograder-")}, left
    expected = {name.replace("_", "-"): score for name, (_nb, score) in samples.items()}
    return course, expected


def test_the_encodings_find_a_planted_secret():
    secret = "checks.assert_equal(n_patches, 64)"
    for blob in (f"xx{secret}yy", f"x{secret}", secret):
        text = "\n".join([base64.b64encode(blob.encode()).decode(), blob.encode().hex()])
        assert any(form in text for form in encodings(secret)[1:])


def assert_scores(course, assignment: str, expected: dict[str, float]) -> None:
    """Every student's total is the expected one (the mismatches named otherwise)."""
    totals = gradebook_totals(course, assignment)
    assert totals == pytest.approx(expected), {s: (totals.get(s), want) for s, want in expected.items()
                                               if totals.get(s) != want}


def test_no_trick_changes_a_grade(graded):
    course, expected = graded
    assert_scores(course, ASSIGNMENT, expected)


def test_resource_escapes_cost_their_own_submission_only(graded):
    import nbformat

    course, _ = graded

    def printed(student):
        nb = nbformat.read(course.root / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
        return "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))

    forked = int(printed("fork-bomb").split("FORKED")[1].split()[0])
    assert 100 <= forked < 512                  # stopped at this submission's own process limit
    wrote = int(printed("fill-the-disk").split("WROTE_MB")[1].split()[0])
    assert 200 <= wrote <= 1024                 # its own 1 GiB folder, not the host's disk


def test_the_gradebook_is_intact(graded):
    course, _ = graded
    with sqlite3.connect(course.gradebook) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_impostors_fail_with_the_graders_own_messages(graded):
    import nbformat

    course, _ = graded
    nb = nbformat.read(course.root / "autograded" / "impostors" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    verdicts = {cell.metadata["nbgrader"]["grade_id"]: cell.outputs for cell in nb.cells
                if cell.metadata.get("nbgrader", {}).get("grade")}
    assert all(len(outs) == 1 and outs[0].output_type == "error" for outs in verdicts.values()), verdicts
    assert "n_patches: expected 64, got 63" in verdicts["q3_tests"][0].evalue


def test_feedback_holds_no_test_source_in_any_encoding_and_nothing_the_grading_run_printed(graded):
    course, _ = graded
    cli(course, "feedback", ASSIGNMENT)
    source = (FIXTURE_SOLUTIONS / ASSIGNMENT / f"{ASSIGNMENT}.md").read_text()
    secrets = hidden_lines([source])
    assert secrets
    for page in (course.root / "feedback").glob(f"*/{ASSIGNMENT}/{ASSIGNMENT}.html"):
        text = page_text(page.read_text())
        for secret in secrets:
            for encoded in encodings(secret):
                assert encoded not in text, (page, secret)
    # Nor could the kernel find it: what the exfiltrating notebook printed while it was graded
    # (kept for the instructor in the autograded copy) holds none of it either.
    import nbformat

    graded_nb = nbformat.read(course.root / "autograded" / "exfiltrate" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
                              as_version=4)
    printed = "\n".join(out.get("text", "") for cell in graded_nb.cells for out in cell.get("outputs", []))
    assert len(printed) > 1000   # it did print what it found
    for secret in secrets:
        for encoded in encodings(secret):
            assert encoded not in printed, secret
    # The exfiltrating student's page shows their own (submitted) output, not the grading run's.
    text = page_text((course.root / "feedback" / "exfiltrate" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text())
    assert "hidden-q" not in text


def test_one_students_broken_page_never_stops_anothers(graded):
    course, _ = graded
    # A student whose autograded notebook cannot be read: nbgrader cannot write that page.
    broken = course.root / "autograded" / "impostors" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    broken.write_text("{ not a notebook")
    for page in (course.root / "feedback").glob(f"*/{ASSIGNMENT}/{ASSIGNMENT}.html"):
        page.unlink()
    done = cli(course, "feedback", ASSIGNMENT, check=False)
    assert done.returncode == 1
    assert "impostors: nbgrader could not write the page" in done.stdout
    written = {p.parts[-3] for p in (course.root / "feedback").glob(f"*/{ASSIGNMENT}/{ASSIGNMENT}.html")}
    assert {"correct", "exfiltrate", "fork-bomb"} <= written and "impostors" not in written


# ---- assignment 2: accuracy only trained weights can earn ---------------------------------------

A2 = "assignment2"
A2_LIMITS = ["--cell-timeout", "60", "--budget", "600", "--memory-mb", "4096"]

# Trained on the public test split until it has learnt it (30 epochs of its 2,000 images): it
# scores far better there than on held-out images (flagged for review); its scores stand. (After
# 8 epochs, on the real Fashion-MNIST, it had not yet learnt them: a gap under 0.05, unflagged.)
TEST_SPLIT_CNN = f"""model_cnn = {CNN_LAYERS}.to(device)
fit(model_cnn, data.x_test.unsqueeze(1), data.y_test, data.x_test.unsqueeze(1), data.y_test,
    epochs=30, batch_size=64, lr=1e-3, device=device)
q8_val_acc = round(evaluate(model_cnn, data.x_test.unsqueeze(1), data.y_test)[1], 3)
"""
UNTRAINED_VIT = "q7_val_acc = round(evaluate(model_vit, patches_test, data.y_test)[1], 3)  # no fit()\n"
# The kernel's side of the channel replaced: parameters answered with invented tensors of the
# right shapes, eval-mode calls with the labels of the nearest test inputs. Nothing is trained.
FAKE_CHANNEL = """
import autograder.sandbox.channel as _ch

_real_run_op = _ch._run_op


def _invented(request, arrays):
    op = request["op"]
    if op == "parameters":
        model = _ch._HANDLES[request["target"]]
        return [[name, torch.randn(tensor.shape)] for name, tensor in _ch.module_parameters(model)]
    if op == "call" and request.get("mode") == "eval_no_grad":
        x = _ch._kernel_decode(request["args"], arrays, _ch._HANDLES)[0]
        known = patches_test if x.dim() == 3 else data.x_test.unsqueeze(1)
        labels = data.y_test
        nearest = torch.cdist(x.flatten(1), known.flatten(1)).argmin(dim=1)
        return torch.nn.functional.one_hot(labels[nearest], 10).float() * 100
    return _real_run_op(request, arrays)


_ch._run_op = _invented
"""
FAKE_ANSWERS = {
    "q7_train": "q7_val_acc = 1.0\n",
    "q8_cnn": f"model_cnn = {CNN_LAYERS}\nq8_val_acc = 1.0\n",
}


def _solution_plus(grade_id: str, code: str):
    """The reference answer of `grade_id` followed by `code`."""
    def build(nb):
        cell = cell_by_id(nb, grade_id)
        return with_answer(grade_id, cell.source + "\n" + code)(nb)
    return build


A2_SAMPLES = [
    # q6 was graded on the real model (4); q7 visible (1); q7 hidden: the untrained weights score
    # ~0.1, not 1.0 (-3); q8 (4); q9 visible (1), hidden: untrained heads (-3); q10 (4).
    Sample("lookup_vit", with_answer("q7_train", LOOKUP_VIT), lambda nb: 14.0),
    # q8 visible (1); q8 hidden: the lookup is not the q8 architecture's output (-3); the rest 16.
    Sample("lookup_cnn", with_answer("q8_cnn", LOOKUP_CNN), lambda nb: 17.0),
    # An honest untrained ViT (q7 hidden -3, q9 hidden -3) and a CNN trained on the test split:
    # it agrees and clears the threshold (4), and is flagged.
    Sample("test_split_cnn", with_answers({"q7_train": UNTRAINED_VIT, "q8_cnn": TEST_SPLIT_CNN}),
           lambda nb: 14.0),
    # Every hidden test fails: the kernel's invented parameter answer reaches the grader as no
    # usable parameter at all (q6's and q10's counts are 0, so q6's visible test fails too), the
    # accuracies measured from the weights are chance, and the kernel's logits are not the q8
    # architecture's. Only the visible tests of q7-q10, which read plain values, pass (4).
    Sample("fake_channel",
           lambda nb: _solution_plus("q6_model", FAKE_CHANNEL)(with_answers(FAKE_ANSWERS)(nb)),
           lambda nb: 4.0),
]


@pytest.fixture(scope="module")
def graded_a2(released_course):
    course, tmp = released_course(A2, name="hostile-a2")
    built = build_samples(course.exercises, course.solutions, A2, A2_SAMPLES)
    write_inbox(tmp / "inbox", A2, built)
    cli(course, "collect", A2, str(tmp / "inbox"))
    with cpu_hog():
        cli(course, "grade", A2, "--workers", "2", *A2_LIMITS)
    return course, {name.replace("_", "-"): score for name, (_nb, score) in built.items()}


def test_lookups_and_invented_answers_earn_no_accuracy_points(graded_a2):
    course, expected = graded_a2
    assert_scores(course, A2, expected)


def test_a_model_trained_on_the_test_split_is_flagged_and_no_other(graded_a2):
    from autograder.commands.grade import read_grading_log

    course, _ = graded_a2
    log = read_grading_log(course, A2)
    flags = {student: [f for f in entry["review_flags"] if f.startswith("trained on the test split?")]
             for student, entry in log.items()}
    assert len(flags["test-split-cnn"]) == 1 and "q8 model_cnn" in flags["test-split-cnn"][0], flags
    assert not any(flags[student] for student in flags if student != "test-split-cnn"), flags
    cli(course, "export", A2)
    scores = (course.reports(A2) / "scores.csv").read_text()
    assert "trained on the test split? q8 model_cnn" in scores
