"""Chapter 7's DINO run, at a few budgets: what each costs and whether the chapter's claims hold.

For each number of epochs (the quick recipe otherwise unchanged), train DINO on the stand-in as
chapter 7 does, then measure what the chapter asserts, on a validation split: training images
that neither DINO (the first 4,096) nor the k-NN bank (the first 5,000) uses. A recipe is chosen
here, on those images; the chapter then reports its test images once.

* k-NN gain of the teacher over the same network before training (bank 5,000, queries the 2,000
  validation images, k = 20): at least 5 points and more than 3 paired standard errors of the gain;
* the teacher's CLS attention on the stand-in's objects (1,000 validation images): at least twice
  the object's share of the area, and 10 points above the teacher's own mean map.

Prints one row per budget: CPU seconds of the training, the two measurements, and whether both
margins hold. Run alone on the machine, one torch thread (as the book build runs a chapter):

    python bench/dino_budget.py [--epochs 8 10 12] [--heads 2 4] [--json OUT]

``--heads`` changes the quick DINO ViT's number of heads (same width: wider heads, fewer of them),
the other lever on a step's cost besides the number of steps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vitcourse.attention_maps import object_share, patch_shares  # noqa: E402
from vitcourse.cifar import normalize  # noqa: E402
from vitcourse.data import load_cifar10  # noqa: E402
from vitcourse.data.synthetic import synthetic_object_masks  # noqa: E402
from vitcourse.dino import (DINOTrainer, attention_follows_objects, extract_features,  # noqa: E402
                            knn_gain_margin, knn_predict, make_backbone, quick_dino_recipe)
from vitcourse.stats import paired_gain  # noqa: E402


def measure(epochs: int, heads: int, data) -> dict:
    x_train, y_train, _, _ = data.arrays()  # the test split is the chapter's, not the bench's
    val = slice(len(x_train) - 2000, len(x_train))
    assert val.start >= max(quick_dino_recipe().train_subset, 5000)
    x_val, y_val = x_train[val], y_train[val]
    recipe = quick_dino_recipe(epochs=epochs)
    recipe = replace(recipe, model=replace(recipe.model, heads=heads))
    trainer = DINOTrainer(recipe, x_train, device="cpu")
    torch.manual_seed(recipe.seed)
    untrained = make_backbone(recipe.model).eval()
    start = time.process_time()
    trainer.fit(progress=False)
    cpu = time.process_time() - start
    teacher = trainer.teacher_backbone.eval()
    right = {}  # per validation image: did k-NN label it right (the same images for both)
    for name, net in (("teacher", teacher), ("untrained", untrained)):
        bank, queries = extract_features(net, x_train[:5000]), extract_features(net, x_val)
        predicted = knn_predict(bank, torch.as_tensor(y_train[:5000]), queries, k=20,
                                num_classes=len(data.class_names))
        right[name] = predicted == torch.as_tensor(y_val).long()
    gain, se = paired_gain(right["untrained"], right["teacher"])
    masks = synthetic_object_masks("train", len(x_train), data.name)[-1000:]
    images = normalize(torch.from_numpy(x_train[-1000:]).permute(0, 3, 1, 2).float() / 255)
    maps = patch_shares(teacher, images)
    area = float(object_share(torch.ones_like(maps), masks).mean())
    after = float(object_share(maps, masks).mean())
    fixed = float(object_share(maps.mean(0).expand_as(maps), masks).mean())
    holds = gain >= knn_gain_margin(se) and attention_follows_objects(after, area, fixed)
    return {"epochs": epochs, "heads": heads, "steps": trainer.step, "train_cpu_s": cpu, "knn_gain_points": 100 * gain,
            "knn_gain_in_se": gain / se, "object_over_area": after / area,
            "object_minus_mean_map_points": 100 * (after - fixed), "margins_hold": bool(holds)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[8, 10, 12])
    parser.add_argument("--heads", type=int, nargs="+", default=[quick_dino_recipe().model.heads])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    data = load_cifar10(standin="synthetic-cifar-clutter")
    rows = []
    for heads in args.heads:
        for epochs in args.epochs:
            rows.append(measure(epochs, heads, data))
            r = rows[-1]
            print(f"{r['heads']} heads {r['epochs']:>3} epochs {r['steps']:>5} steps  "
                  f"train {r['train_cpu_s']:6.1f} CPU-s  "
                  f"k-NN {r['knn_gain_points']:+5.1f} pts ({r['knn_gain_in_se']:4.1f} SE)  "
                  f"object {r['object_over_area']:.2f}× area, {r['object_minus_mean_map_points']:+5.1f} pts "
                  f"over mean map  margins {'hold' if r['margins_hold'] else 'MISSED'}", flush=True)
    if args.json:  # the layout of bench/results/dino_budget_cpu.json
        record = {"recorded": f"{time.strftime('%Y-%m-%d')}, torch {torch.__version__}, one torch thread",
                  "command": "python bench/dino_budget.py " + " ".join(sys.argv[1:]), "rows": rows}
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
