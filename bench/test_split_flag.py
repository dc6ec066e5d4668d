"""False positives of the "trained on the test split?" review flag: the reference solution, 5 seeds.

Runs the solution cells of assignment 2 (setup, q6, q7, q8) once per seed, as
bench/calibrate_assignment2.py does, then measures each model the way the grader does (its
weights in the course's reference architecture, ``assignment2.measure``) and prints the test-split
accuracy, the held-out accuracy, their gap and whether ``grading.flag_test_split_fit`` would flag
it (gap > ``grading.TEST_SPLIT_GAP``). Usage:

    python bench/test_split_flag.py [--seeds 0 1 2 3 4]

The profile and data set are whatever the assignment would use here (printed).
"""

from __future__ import annotations

import argparse

from calibrate_assignment2 import CELLS, solution_cells


def trained_models(cells: dict[str, str], seed: int) -> dict:
    """The namespace of the solution cells run with `seed` (models trained)."""
    namespace: dict = {}
    for name in CELLS:
        code = cells[name].replace("seed_everything(0)", f"seed_everything({seed})")
        exec(compile(code.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""),
                     f"<{name}>", "exec"), namespace)
    return namespace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    from autograder import grading
    from vitcourse import assignment2
    from vitcourse.profile import get_profile

    cells = solution_cells()
    flagged = 0
    for seed in args.seeds:
        namespace = trained_models(cells, seed)
        for kind, name in (("ViT", "model_vit"), ("CNN", "model_cnn")):
            model = grading.load_weights(namespace[name], assignment2.reference_model(kind))
            m = assignment2.measure(model, kind, seed)
            gap = m.test - m.heldout
            flagged += gap > grading.TEST_SPLIT_GAP
            print(f"seed {seed} {kind}: data={namespace['data'].name} profile={get_profile().name}  "
                  f"test {m.test:.3f}  held-out {m.heldout:.3f} ({m.heldout_what})  gap {gap:+.3f}  "
                  f"flagged {gap > grading.TEST_SPLIT_GAP}", flush=True)
    print(f"flagged {flagged} of {2 * len(args.seeds)} reference models "
          f"(rule: gap > {grading.TEST_SPLIT_GAP})")


if __name__ == "__main__":
    main()
