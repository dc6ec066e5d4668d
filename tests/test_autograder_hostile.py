"""Submissions written by a determined student, graded in one parallel batch beside a CPU hog.

Each sample tries one way to change its grade without earning it: it takes over how later
cells execute (input and AST transformers, event callbacks, exception hooks, tracing and audit
hooks, import hooks and replaced modules, patched numpy and builtins), hands the tests objects
whose comparisons lie, or reaches for the tests' source to print it in an encoded form. The
tests run in the grader's own process and see only plain values (autograder/channel.py), so a
submission with no answers scores 0 whatever it installs, and a wrong answer stays wrong.

The batch runs with one busy-looping process per core beside it: the grade must not depend on
how busy the machine is (limits are in CPU-seconds).
"""

from __future__ import annotations

import base64
import codecs
import copy
import sqlite3
from pathlib import Path

import pytest

from autograder.feedback import hidden_lines, page_text
from autograder.samples import cell_by_id
from autograder_support import FIXTURE_SOLUTIONS, TEST_LIMITS, cli, cpu_hog, temp_course, write_inbox

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
    from autograder.release import read_source
    from autograder.samples import correct_submission

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


def test_no_trick_changes_a_grade(graded):
    from autograder_support import gradebook_totals

    course, expected = graded
    totals = gradebook_totals(course, ASSIGNMENT)
    assert totals == pytest.approx(expected), {s: (totals.get(s), want) for s, want in expected.items()
                                               if totals.get(s) != want}


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
