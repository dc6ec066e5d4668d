"""Assignment 2's accuracy thresholds: one per (data set, profile) the grader can meet, each well
below the reference solution's worst calibration seed and far above an untrained model."""

from __future__ import annotations

import pytest
import torch

from vitcourse import assignment2 as a2
from vitcourse.data import FASHION_MNIST, load_standin
from vitcourse.data.loaders import data_status, load_fashion_mnist
from vitcourse.profile import Profile

# Every pair a grading run can meet: the real data in either budget; the stand-in only in the
# quick profile (the full profile never falls back to it).
GRADED_PAIRS = [("fashion-mnist", "quick"), ("fashion-mnist", "full"), ("synthetic-fashion", "quick")]
REAL_DATA = bool(data_status(FASHION_MNIST).verified)


@pytest.mark.parametrize("pair", GRADED_PAIRS)
@pytest.mark.parametrize("kind", ["ViT", "CNN"])
def test_each_threshold_sits_well_below_the_worst_calibration_seed(pair, kind):
    seeds = a2.CALIBRATION[pair][kind]
    assert len(seeds) >= 5 and None not in seeds, f"{pair}: calibrate 5 seeds first"
    need = a2.threshold(pair[0], kind, pair[1])
    assert need <= min(seeds) - 0.05, (pair, kind, need, min(seeds))
    assert need >= 0.10 + 0.30, "an untrained model (chance, 0.10) must be far below"


def test_an_uncalibrated_pair_is_refused_with_what_to_do():
    with pytest.raises(a2.ThresholdNotCalibrated, match=r"no calibrated assignment-2 threshold for the ViT on "
                                                        r"synthetic-fashion in the full profile .* needs a "
                                                        r"person's review, or run `python bench/calibrate"):
        a2.threshold("synthetic-fashion", "ViT", "full")
    assert a2.graded_threshold("synthetic-fashion", "ViT", Profile("full", "test")) is None
    with pytest.raises(ValueError, match="model must be 'ViT' or 'CNN'"):
        a2.threshold("fashion-mnist", "MLP", "quick")


def _untrained_scores(dataset, profile: Profile) -> dict[str, tuple[float, float]]:
    torch.manual_seed(0)
    scores = {}
    for kind in ("ViT", "CNN"):
        measured = a2.measure(a2.reference_model(kind), kind, seed=1, profile=profile, dataset=dataset)
        scores[kind] = measured.unseen, measured.need
    return scores


@pytest.mark.skipif(not REAL_DATA, reason="the real Fashion-MNIST is not on this machine (apt-get install "
                    "dataset-fashion-mnist); its thresholds are checked against the recorded calibration above")
@pytest.mark.parametrize("profile", ["quick", "full"])
def test_an_untrained_model_fails_on_the_real_data(profile):
    data = load_fashion_mnist(download=False, allow_synthetic=False)
    for kind, (accuracy, need) in _untrained_scores(data, Profile(profile, "test")).items():
        assert accuracy < 0.25 < need, (profile, kind, accuracy, need)


def test_an_untrained_model_fails_on_the_stand_in():
    data = load_standin("synthetic-fashion", "quick")
    for kind, (accuracy, need) in _untrained_scores(data, Profile("quick", "test")).items():
        assert accuracy < 0.25 < need, (kind, accuracy, need)
