"""Chapter 5's race of the first ViT and the CNN: what each shorter recipe would show, and its cost.

Trains both contenders of chapter 5 (``FirstViT`` and ``race_cnn``) with the chapter's settings
(Adam 1e-3, batches of 64, float32, one thread, the chapter's seeds) for ``--epochs`` epochs on
the first ``--n-fit`` training images of the quick budget, watching the last ``--n-val`` images
of that budget as the validation split, and records after every epoch the validation accuracy,
the test-split accuracy (for this measurement only: the chapter reads the test split once) and
the CPU seconds spent. A run of E epochs follows the first E epochs of a longer run exactly (the
same seed, the same batch order, the same dropout draws: evaluation draws no random numbers), so
one long run per (model, seed) shows every shorter recipe. For each candidate length it prints
what the chapter would assert (the leader, the mean gap in points, its standard error, the
smallest per-seed gap, the late gains over the last ``--window`` epochs) and the CPU seconds
the race would cost.

    OMP_NUM_THREADS=1 python bench/race_recipe.py --epochs 20 --n-fit 10000
    OMP_NUM_THREADS=1 python bench/race_recipe.py --epochs 12 --n-fit 6000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from unittest import mock

import torch

from vitcourse import assignment2, seed_everything, training
from vitcourse.first_vit import FirstViT, race_cnn
from vitcourse.profile import get_profile

CONTENDERS = {"ViT": (FirstViT, assignment2.vit_inputs), "CNN": (race_cnn, assignment2.cnn_inputs)}


def one_run(name: str, seed: int, split, n_fit: int, n_val: int, epochs: int) -> dict:
    """Per-epoch validation and test accuracy and CPU seconds of one contender and seed."""
    build, inputs = CONTENDERS[name]
    x, y = inputs(split.x_train), split.y_train
    x_test = inputs(split.x_test)
    test_acc, cpu = [], []
    real_evaluate = training.evaluate

    def evaluate_and_test(model, x_val, y_val, batch_size=None):
        """The validation pass fit makes, then (outside the recipe's cost) the test split."""
        result = real_evaluate(model, x_val, y_val, batch_size)
        now = time.process_time()
        cpu.append(now - start[0])
        test_acc.append(real_evaluate(model, x_test, split.y_test)[1])
        start[0] += time.process_time() - now   # the test pass is not the recipe's cost
        return result

    seed_everything(seed)
    model = build()
    start = [time.process_time()]
    with mock.patch.object(training, "evaluate", evaluate_and_test):
        history = training.fit(model, x[:n_fit], y[:n_fit], x[-n_val:], y[-n_val:], epochs=epochs,
                               batch_size=64, lr=1e-3, seed=seed, progress=False, cpu_threads=1,
                               mixed_precision=False, device="cpu")
    # cpu: cumulative CPU seconds of training and validation at the end of each epoch
    return {"val_acc": history.val_acc, "test_acc": test_acc, "cpu": cpu}


def verdict(runs: dict, seeds: list[int], length: int, window: int) -> dict:
    """What the chapter's assertions see for a race of ``length`` epochs."""
    gaps = [runs["CNN", s]["test_acc"][length - 1] - runs["ViT", s]["test_acc"][length - 1]
            for s in seeds]
    mean = statistics.mean(gaps)
    se = statistics.stdev(gaps) / len(gaps) ** 0.5 if len(gaps) > 1 else float("nan")
    late = {name: max(max(runs[name, s]["val_acc"][length - window:length])
                      - max(runs[name, s]["val_acc"][:length - window]) for s in seeds)
            for name in CONTENDERS}
    return {"epochs": length, "vit": statistics.mean(runs["ViT", s]["test_acc"][length - 1] for s in seeds),
            "cnn": statistics.mean(runs["CNN", s]["test_acc"][length - 1] for s in seeds),
            "gap": mean, "se": se, "min_gap": min(gaps, key=lambda g: g * (1 if mean > 0 else -1)),
            "late_vit": late["ViT"], "late_cnn": late["CNN"],
            "cpu": sum(runs[key]["cpu"][length - 1] for key in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--n-fit", type=int, default=10_000)
    parser.add_argument("--n-val", type=int, default=2_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--window", type=int, default=3, help="epochs the late gain looks at")
    parser.add_argument("--json", help="write the per-epoch records here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    split = assignment2.load_split(get_profile())
    if args.n_fit + args.n_val > len(split.y_train):
        parser.error(f"--n-fit + --n-val must fit in the {len(split.y_train):,} images of the budget")
    print(f"{split.name}: {args.n_fit:,} training, {args.n_val:,} validation, "
          f"{len(split.y_test):,} test images; seeds {args.seeds}")
    runs = {}
    for seed in args.seeds:
        for name in CONTENDERS:
            runs[name, seed] = run = one_run(name, seed, split, args.n_fit, args.n_val, args.epochs)
            print(f"{name} seed {seed}: validation {run['val_acc'][-1]:.3f}, test "
                  f"{run['test_acc'][-1]:.3f} after {args.epochs} epochs, {run['cpu'][-1]:.0f} CPU s",
                  flush=True)
    print(f"{'epochs':>6} {'ViT':>6} {'CNN':>6} {'gap':>6} {'se':>5} {'min':>6} "
          f"{'lateV':>6} {'lateC':>6} {'cpu_s':>6}")
    for length in range(args.window + 1, args.epochs + 1):
        v = verdict(runs, args.seeds, length, args.window)
        print(f"{length:6d} {v['vit']:6.3f} {v['cnn']:6.3f} {100 * v['gap']:6.2f} "
              f"{100 * v['se']:5.2f} {100 * v['min_gap']:6.2f} {100 * v['late_vit']:6.2f} "
              f"{100 * v['late_cnn']:6.2f} {v['cpu']:6.0f}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"dataset": split.name, "args": vars(args),
                       "runs": {f"{n}/{s}": r for (n, s), r in runs.items()}}, out, indent=1)


if __name__ == "__main__":
    main()
