"""Chapter 7's DINO run, at a few budgets: what each costs and whether the chapter's claims hold.

For each number of epochs (the quick recipe otherwise unchanged), train DINO on the stand-in as
chapter 7 does, then measure what the chapter asserts:

* k-NN gain of the teacher over the same network before training (bank 5,000, queries 2,000,
  k = 20): at least 5 points and more than 3 standard errors;
* the teacher's CLS attention on the stand-in's objects (1,000 test images): at least twice the
  object's share of the area, and 10 points above the teacher's own mean map.

Prints one row per budget: CPU seconds of the training, the two measurements, and whether both
margins hold. Run alone on the machine, one torch thread (as the book build runs a chapter):

    python bench/dino_budget.py [--epochs 8 10 12] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vitcourse.attention_maps import object_share, patch_shares  # noqa: E402
from vitcourse.cifar import normalize  # noqa: E402
from vitcourse.data import load_cifar10  # noqa: E402
from vitcourse.data.synthetic import synthetic_object_masks  # noqa: E402
from vitcourse.dino import (DINOTrainer, extract_features, knn_accuracy, make_backbone,  # noqa: E402
                            quick_dino_recipe)


def measure(epochs: int, data) -> dict:
    x_train, y_train, x_test, y_test = data.arrays()
    recipe = quick_dino_recipe(epochs=epochs)
    trainer = DINOTrainer(recipe, x_train, device="cpu")
    torch.manual_seed(recipe.seed)
    untrained = make_backbone(recipe.model).eval()
    start = time.process_time()
    trainer.fit(progress=False)
    cpu = time.process_time() - start
    teacher = trainer.teacher_backbone.eval()
    acc = {}
    for name, net in (("teacher", teacher), ("untrained", untrained)):
        bank, queries = extract_features(net, x_train[:5000]), extract_features(net, x_test[:2000])
        acc[name] = knn_accuracy(bank, y_train[:5000], queries, y_test[:2000], k=20,
                                 num_classes=len(data.class_names))
    se = float(np.sqrt(acc["untrained"] * (1 - acc["untrained"]) / 2000))
    gain = acc["teacher"] - acc["untrained"]
    masks = synthetic_object_masks("test", 1000, data.name)
    images = normalize(torch.from_numpy(x_test[:1000]).permute(0, 3, 1, 2).float() / 255)
    maps = patch_shares(teacher, images)
    area = float(object_share(torch.ones_like(maps), masks).mean())
    after = float(object_share(maps, masks).mean())
    fixed = float(object_share(maps.mean(0).expand_as(maps), masks).mean())
    holds = gain >= max(0.05, 3 * se) and after >= 2 * area and after - fixed >= 0.10
    return {"epochs": epochs, "steps": trainer.step, "train_cpu_s": cpu, "knn_gain_points": 100 * gain,
            "knn_gain_in_se": gain / se, "object_over_area": after / area,
            "object_minus_mean_map_points": 100 * (after - fixed), "margins_hold": bool(holds)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[8, 10, 12])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    data = load_cifar10(standin="synthetic-cifar-clutter")
    rows = []
    for epochs in args.epochs:
        rows.append(measure(epochs, data))
        r = rows[-1]
        print(f"{r['epochs']:>3} epochs {r['steps']:>5} steps  train {r['train_cpu_s']:6.1f} CPU-s  "
              f"k-NN {r['knn_gain_points']:+5.1f} pts ({r['knn_gain_in_se']:4.1f} SE)  "
              f"object {r['object_over_area']:.2f}× area, {r['object_minus_mean_map_points']:+5.1f} pts "
              f"over mean map  margins {'hold' if r['margins_hold'] else 'MISSED'}", flush=True)
    if args.json:  # the layout of bench/results/dino_budget_cpu.json
        record = {"recorded": f"{time.strftime('%Y-%m-%d')}, torch {torch.__version__}, one torch thread",
                  "command": "python bench/dino_budget.py " + " ".join(sys.argv[1:]), "rows": rows}
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
