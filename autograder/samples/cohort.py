"""Sample cohorts for closing an assignment: planted copies, look-alike short answers, and
large synthetic batches, all built from the released notebook (see samples.py).

Used by tests/autograder/test_autograder_closing.py and bench/similarity_speed.py.
"""

from __future__ import annotations

import copy
import random
import re

from autograder.samples.submissions import answer_ids, cell_by_id

# A long answer of the demo's softmax question, written "by hand" (not the reference).
ORIGINAL_SOFTMAX = '''def _row_max(values):
    """Largest entry of every row, kept as a column so it broadcasts."""
    top = values.max(axis=-1, keepdims=True)
    return top


def _normalise(weights):
    total = weights.sum(axis=-1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("all weights vanished")
    return weights / total


def softmax(x):
    values = np.asarray(x, dtype=np.float64)
    if values.ndim == 0:
        values = values.reshape(1)
    centred = values - _row_max(values)
    weights = np.exp(centred)
    weights = np.where(np.isfinite(weights), weights, 0.0)
    return _normalise(weights)
'''

# The same answer disguised: names changed, functions reordered, comments added, reformatted.
DISGUISED_SOFTMAX = '''# my own softmax, written with care
def softmax( inp ):
    # convert the input first
    arr = np.asarray( inp, dtype = np.float64 )
    if arr.ndim == 0:
        arr = arr.reshape( 1 )   # a scalar becomes a vector
    shifted = arr - biggest(arr)
    # exponentiate the shifted values
    e = np.exp( shifted )
    e = np.where(np.isfinite(e), e, 0.0)
    return scale_rows( e )


def scale_rows(w):
    # divide by the sum of each row
    s = w.sum(axis = -1, keepdims = True)
    if np.any(s <= 0):
        raise ValueError("weights are all gone")
    return w / s

def biggest(a):
    """max per row"""
    m = a.max(axis=-1, keepdims=True)
    return m
'''

# Another long answer to the same question, independently written (a loop over rows).
OTHER_SOFTMAX = '''def softmax(x):
    data = np.atleast_2d(np.asarray(x, dtype=float))
    rows = []
    for row in data.reshape(-1, data.shape[-1]):
        peak = float(np.max(row))
        exps = [np.exp(v - peak) for v in row]
        norm = sum(exps)
        rows.append([v / norm for v in exps])
    result = np.array(rows).reshape(data.shape)
    return result if np.ndim(x) > 1 else result.reshape(np.shape(x))
'''

# A short answer two students wrote alike without copying (not the reference either).
LOOKALIKE_SCALE = "def scale(x):\n    return np.array(x, dtype=float) * SCALE\n"
LOOKALIKE_PATCHES = "n_patches = 64\n"


def demo_cohort(correct) -> dict:
    """{student: notebook} for the demo assignment: `ada` and `bob` planted copies,
    `cyd` and `dee` the same short answers written independently, the rest distinct."""
    def edit(**answers):
        nb = copy.deepcopy(correct)
        for grade_id, source in answers.items():
            cell_by_id(nb, grade_id).source = source
        return nb

    return {
        "ada": edit(q2_answer=ORIGINAL_SOFTMAX),
        "bob": edit(q2_answer=DISGUISED_SOFTMAX),
        "cyd": edit(q1_answer=LOOKALIKE_SCALE, q3_answer=LOOKALIKE_PATCHES),
        "dee": edit(q1_answer=LOOKALIKE_SCALE, q3_answer=LOOKALIKE_PATCHES),
        "fay": edit(q2_answer=OTHER_SOFTMAX),
        "gus": edit(),
        "late": edit(),
    }


# ---- synthetic batches (benchmark) ---------------------------------------------------

_WORDS = ("alpha beta gamma delta eps zeta theta kappa lam mu nu xi rho sigma tau phi chi psi omega "
          "left right top low high mid acc tmp buf val res out grid row col idx").split()
_FUNCS = ("np.sum np.mean np.max np.min np.exp np.log np.sqrt np.abs np.clip np.cumsum np.sort "
          "np.argmax np.tanh np.square").split()


def random_code(rng: random.Random, lines: int) -> str:
    """Plausible, distinct student code: assignments, loops and calls on random names."""
    out = []
    for _ in range(lines):
        a, b, c = rng.sample(_WORDS, 3)
        kind = rng.random()
        if kind < 0.5:
            out.append(f"{a} = {rng.choice(_FUNCS)}({b} {rng.choice('+-*/')} {rng.randint(1, 99)}) "
                       f"{rng.choice('+-*')} {c}")
        elif kind < 0.8:
            out.append(f"for {a} in range({rng.randint(2, 50)}):\n    {b} = {b} {rng.choice('+-*')} "
                       f"{rng.choice(_FUNCS)}({c}[{a}])")
        else:
            out.append(f"if {a} > {rng.randint(0, 9)}:\n    {b} = [{c}, {rng.random():.3f}]")
    return "\n".join(out) + "\n"


def disguise(source: str, rng: random.Random) -> str:
    """Rename the names random_code uses, add comments and spaces, reverse the statements."""
    renames = {w: f"{w}_{rng.randint(10, 99)}" for w in _WORDS}
    renamed = re.sub(r"\b(" + "|".join(_WORDS) + r")\b", lambda m: renames[m.group(1)], source)
    blocks = re.split(r"\n(?=\S)", renamed.strip())
    blocks.reverse()
    return "\n".join(f"# step {i}\n{block.replace(' = ', '  =  ')}" for i, block in enumerate(blocks)) + "\n"


def synthetic_cohort(correct, size: int, copied_pairs: int, seed: int = 0) -> tuple[dict, set]:
    """`size` notebooks: each answer cell holds the reference plus 6-12 lines of random code;
    `copied_pairs` pairs are disguised copies. Returns ({student: nb}, {(a, b) planted})."""
    rng = random.Random(seed)
    ids = answer_ids(correct)
    cohort, planted = {}, set()
    for number in range(size):
        nb = copy.deepcopy(correct)
        for grade_id in ids:
            cell = cell_by_id(nb, grade_id)
            cell.source = cell.source + "\n" + random_code(rng, rng.randint(6, 12))
        cohort[f"s{number:04d}"] = nb
    for pair in range(copied_pairs):
        original, copier = f"s{2 * pair:04d}", f"s{2 * pair + 1:04d}"
        nb = copy.deepcopy(cohort[original])
        for grade_id in ids:
            cell_by_id(nb, grade_id).source = disguise(cell_by_id(nb, grade_id).source, rng)
        cohort[copier] = nb
        planted.add((original, copier))
    return cohort, planted
