"""The data budget and grading rules of assignment 2 (q6–q10: the first ViT races a CNN).

One copy, used by the assignment's setup cell and by its hidden tests, so the student's
notebook and the grader always agree on which images are the test split.

Accuracy thresholds are a table per data set *and* profile, since the profile sets the budget
(quick: 12,000 / 2,000 images; full: 60,000 / 10,000; 3 epochs each).  Each was calibrated by
running the reference solution with 5 seeds (``python bench/calibrate_assignment2.py --profile
P``) on that data set; the figures are in ``CALIBRATION`` and each threshold sits well below the
lowest seed (on the test split and on the grader's noised images) and far above chance (0.10).
A (data set, profile) pair with no calibrated threshold raises :class:`ThresholdNotCalibrated`,
which the grader reports for review: it never passes or fails a submission silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vitcourse.data import Dataset, load_fashion_mnist
from vitcourse.first_vit import FashionCNN, FirstViT
from vitcourse.patches import extract_patches
from vitcourse.profile import Profile, get_profile

PATCH_SIZE = 4
BATCH_SIZE = 64

# Reference solution, test accuracy for seeds 0-4 (bench/calibrate_assignment2.py, 2-core CPU, one
# thread).  Chance is 0.10; an untrained model scores about that.
CALIBRATION = {
    # Noised grading images: ViT at least 0.677, CNN at least 0.820 (2026-12-07).
    ("fashion-mnist", "quick"): {"ViT": (0.721, 0.724, 0.721, 0.721, 0.680),
                                 "CNN": (0.837, 0.843, 0.834, 0.837, 0.823)},
    # Noised grading images: ViT at least 0.793, CNN at least 0.879 (2026-12-07).
    ("fashion-mnist", "full"): {"ViT": (0.815, 0.803, 0.818, 0.811, 0.814),
                                "CNN": (0.891, 0.893, 0.886, 0.880, 0.889)},
    ("synthetic-fashion", "quick"): {"ViT": (0.653, 0.684, 0.704, 0.703, 0.703),
                                     "CNN": (0.920, 0.909, 0.913, 0.915, 0.888)},
}

# Minimum accuracy a submission's models must reach, per (data set, profile).
THRESHOLDS = {
    # About 0.08 below the worst of the 5 calibration seeds (test split and noised images).
    ("fashion-mnist", "quick"): {"ViT": 0.60, "CNN": 0.75},
    ("fashion-mnist", "full"): {"ViT": 0.72, "CNN": 0.80},
    # About 0.10 below the worst of the 5 calibration seeds.
    ("synthetic-fashion", "quick"): {"ViT": 0.55, "CNN": 0.80},
}
# A reported accuracy must agree with the one the grader recomputes to within this.
AGREEMENT = 0.01


@dataclass(frozen=True)
class Budget:
    """How much the assignment trains: examples and epochs."""

    n_train: int
    n_test: int
    epochs: int


def budget(profile: Profile | None = None) -> Budget:
    """Quick: 12,000 / 2,000 examples and 3 epochs (a 2-core CPU in minutes); full: all of it."""
    profile = profile or get_profile()
    return profile.pick(quick=Budget(12_000, 2_000, 3), full=Budget(60_000, 10_000, 3))


@dataclass(frozen=True)
class Split:
    """The assignment's data: images scaled to [0, 1] as float32 tensors.

    x_train: (N, 28, 28) — the ViT's input before patching; the CNN adds a channel axis.
    y_train: (N,) int64.  x_test, y_test likewise.  name: the data set's name.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    name: str
    class_names: tuple[str, ...]


def load_split(profile: Profile | None = None, dataset: Dataset | None = None) -> Split:
    """The assignment's train and test examples, the first ``budget().n_*`` of each split."""
    plan = budget(profile)
    data = dataset if dataset is not None else load_fashion_mnist()
    data = data.take(min(plan.n_train, len(data.y_train)), min(plan.n_test, len(data.y_test)))

    def scaled(images: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(images.astype(np.float32) / 255.0)

    return Split(scaled(data.x_train), torch.from_numpy(data.y_train), scaled(data.x_test),
                 torch.from_numpy(data.y_test), data.name, data.class_names)


def vit_inputs(images: torch.Tensor) -> torch.Tensor:
    """(N, 28, 28) images → (N, 49, 16) patches, the ViT's input."""
    return extract_patches(images, PATCH_SIZE).contiguous()


def cnn_inputs(images: torch.Tensor) -> torch.Tensor:
    """(N, 28, 28) images → (N, 1, 28, 28): convolutions want a channel axis."""
    return images.unsqueeze(1)


@torch.inference_mode()
def heldout_accuracy(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy of ``model`` (eval mode, no gradient) on ``inputs``; restores its train/eval mode.

    Deliberately not ``vitcourse.training.evaluate``: hidden tests reload this module to get
    code a student's notebook cannot have replaced, so it depends on nothing a cell could patch.
    """
    was_training = model.training
    model.eval()
    try:
        correct = 0
        for start in range(0, len(labels), 1000):
            scores = model(inputs[start:start + 1000])
            correct += int((scores.argmax(dim=-1) == labels[start:start + 1000]).sum())
    finally:
        model.train(was_training)
    return correct / len(labels)


class ThresholdNotCalibrated(LookupError):
    """No accuracy threshold was calibrated for this (data set, profile): grade by hand."""


def threshold(dataset_name: str, model: str, profile_name: str | None = None) -> float:
    """The minimum accuracy for ``model`` ('ViT' or 'CNN') on ``dataset_name`` in the profile
    ``profile_name`` (default: the profile in force).

    Raises:
        ThresholdNotCalibrated: the pair was never calibrated; the message says what to run.
        ValueError: ``model`` is not 'ViT' or 'CNN'.
    """
    if model not in ("ViT", "CNN"):
        raise ValueError(f"model must be 'ViT' or 'CNN', got {model!r}")
    profile_name = profile_name or get_profile().name
    value = THRESHOLDS.get((dataset_name, profile_name), {}).get(model)
    if value is None:
        known = ", ".join(f"{d}/{p}" for (d, p), row in THRESHOLDS.items() if row.get(model) is not None)
        raise ThresholdNotCalibrated(
            f"no calibrated assignment-2 threshold for the {model} on {dataset_name} in the "
            f"{profile_name} profile (calibrated: {known}); this accuracy needs a person's review, "
            f"or run `python bench/calibrate_assignment2.py --profile {profile_name}` and add the "
            f"threshold to vitcourse/assignment2.py")
    return value


def grading_images(images: torch.Tensor, seed: int) -> torch.Tensor:
    """The test images as the grader shows them: each pixel given faint noise (σ = 0.02, clipped
    to [0, 1]), as ``seed`` decides.

    A model that learned the classes barely notices (``tests/assignments/test_assignment2.py`` measures the
    reference models: they lose less than a point); a lookup table of the public test images no
    longer finds a single one. (Moving the images by a pixel as well cost the stand-in's
    reference ViT 2-3 points, so the grader does not.)
    """
    generator = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(images.shape, generator=generator) * 0.02
    return (images + noise).clamp_(0.0, 1.0)


# ---- grading from weights (autograder/README.md, "Accuracy from weights") --------------------

# The parameters each graded model must have, in this order (q6 and q8 list them): the grader
# loads a submission's tensors into these architectures and computes every accuracy itself.
REFERENCE_MODELS = {"ViT": FirstViT, "CNN": FashionCNN}
MODEL_INPUTS = {"ViT": vit_inputs, "CNN": cnn_inputs}


def reference_model(kind: str) -> torch.nn.Module:
    """A freshly initialised copy of the question's architecture: 'ViT' (q6, 42,506 parameters,
    ``vitcourse.first_vit.FirstViT``) or 'CNN' (q8, 121,930, ``FashionCNN``)."""
    if kind not in REFERENCE_MODELS:
        raise ValueError(f"no reference architecture for {kind!r}; known: {sorted(REFERENCE_MODELS)}")
    return REFERENCE_MODELS[kind]()


def heldout_split(profile: Profile | None = None, dataset: Dataset | None = None):
    """(images (n_test, 28, 28) float32 in [0, 1], labels (n_test,), what they are) to compare a
    model's test-split accuracy with.

    The training images the data budget leaves unused, where there are enough (a model trained
    as the question says never saw them: it scores about as well there as on the test split);
    otherwise the first ``n_test`` training images, which it did train on (and scores at least
    as well on).
    """
    plan = budget(profile)
    data = dataset if dataset is not None else load_fashion_mnist()
    n_train, n_test = min(plan.n_train, len(data.y_train)), min(plan.n_test, len(data.y_test))
    if len(data.y_train) >= n_train + n_test:
        chosen, what = slice(n_train, n_train + n_test), "training images the budget leaves unused"
    else:
        chosen, what = slice(0, n_test), "the training images it trained on"
    images = torch.from_numpy(data.x_train[chosen].astype(np.float32) / 255.0)
    return images, torch.from_numpy(data.y_train[chosen]), what


@dataclass(frozen=True)
class Measured:
    """A model's accuracies as the grader measures them (fractions in [0, 1]).

    test: on the public test split; unseen: on the grader's noised test images
    (``grading_images``), where ``need`` (the threshold; None where none was calibrated) counts; heldout: on ``heldout_what``
    (``heldout_split``), to compare with ``test``.
    """

    test: float
    unseen: float
    heldout: float
    heldout_what: str
    need: float | None


def graded_threshold(dataset_name: str, kind: str, profile: Profile | None = None) -> float | None:
    """The threshold graded for ``kind`` on ``dataset_name`` in ``profile`` (default: the one in
    force), or None where that pair was never calibrated: the hidden test then puts a review flag
    on the accuracy instead of judging it (``ThresholdNotCalibrated``'s message says why)."""
    try:
        return threshold(dataset_name, kind, (profile or get_profile()).name)
    except ThresholdNotCalibrated:
        return None


def measure(model: torch.nn.Module, kind: str, seed: int, profile: Profile | None = None,
            dataset: Dataset | None = None) -> Measured:
    """Every accuracy the grader needs of ``model`` (a module of the grader's own, e.g. the
    reference architecture holding a submission's weights), ``kind`` 'ViT' or 'CNN'."""
    data = dataset if dataset is not None else load_fashion_mnist()
    split = load_split(profile, data)
    inputs = MODEL_INPUTS[kind]
    held_images, held_labels, held_what = heldout_split(profile, data)
    return Measured(
        test=heldout_accuracy(model, inputs(split.x_test), split.y_test),
        unseen=heldout_accuracy(model, inputs(grading_images(split.x_test, seed)), split.y_test),
        heldout=heldout_accuracy(model, inputs(held_images), held_labels),
        heldout_what=held_what,
        need=graded_threshold(split.name, kind, profile),
    )
