"""vitcourse.stats: standard errors of test accuracies, paired differences, and when one is clear."""

import math

import numpy as np
import pytest
import torch

from vitcourse.stats import CLEAR_SE, binomial_se, is_clear, paired_gain, paired_sentence, standard_errors


def test_binomial_se_matches_the_spread_of_simulated_accuracies():
    rng = np.random.default_rng(0)
    accuracies = rng.binomial(2_000, 0.7, size=20_000) / 2_000
    assert binomial_se(0.7, 2_000) == pytest.approx(accuracies.std(), rel=0.03)
    assert binomial_se(0.7, 2_000) == pytest.approx(math.sqrt(0.21 / 2_000))
    assert binomial_se(1.0, 10) == 0.0


@pytest.mark.parametrize("accuracy, n, message", [(73.0, 100, r"\[0, 1\] \(0\.73 for 73 %\), got 73\.0"),
                                                  (0.5, 0, "at least 1"), (-0.1, 10, "got -0.1")])
def test_binomial_se_says_what_was_wrong(accuracy, n, message):
    with pytest.raises(ValueError, match=message):
        binomial_se(accuracy, n)


def test_paired_gain_by_hand():
    plain = torch.tensor([1, 1, 0, 0, 1], dtype=torch.bool)
    distilled = torch.tensor([1, 0, 1, 1, 1], dtype=torch.bool)
    # d = [0, -1, 1, 1, 0]: mean 0.2; sample variance (0.04 + 1.44 + 0.64 + 0.64 + 0.04) / 4 = 0.7
    gain, se = paired_gain(plain, distilled)
    assert gain == pytest.approx(0.2)
    assert se == pytest.approx(math.sqrt(0.7 / 5))
    assert paired_gain(distilled, plain)[0] == pytest.approx(-0.2)
    assert paired_gain(plain, plain) == (0.0, 0.0)
    # shares of two runs: d = [0.5, -0.5, 0.5, 0.5]
    assert paired_gain([0.5, 1.0, 0.0, 0.5], [1.0, 0.5, 0.5, 1.0])[0] == pytest.approx(0.25)
    with pytest.raises(ValueError, match=r"one length ≥ 2, got \(5,\) and \(4,\)"):
        paired_gain(plain, distilled[:4])


def test_paired_gain_is_tighter_than_two_independent_errors_when_the_models_agree():
    rng = np.random.default_rng(0)
    a = rng.random(2_000) < 0.6
    b = a.copy()
    flip = rng.choice(2_000, 100, replace=False)                 # b differs from a on 100 images
    b[flip] = ~b[flip]
    gain, se = paired_gain(a, b)
    assert gain == pytest.approx((b.mean() - a.mean()))
    unpaired = math.sqrt(binomial_se(a.mean(), 2_000) ** 2 + binomial_se(b.mean(), 2_000) ** 2)
    assert se < unpaired / 3


def test_a_difference_is_clear_beyond_clear_se_standard_errors():
    assert CLEAR_SE == 2
    assert is_clear(0.021, 0.01) and is_clear(-0.021, 0.01)
    assert not is_clear(0.02, 0.01) and not is_clear(-0.019, 0.01) and not is_clear(0.0, 0.0)
    assert is_clear(0.001, 0.0)
    with pytest.raises(ValueError, match="≥ 0, got -0.1"):
        is_clear(0.1, -0.1)
    assert standard_errors() == "two standard errors"
    assert standard_errors(1) == "one standard error" and standard_errors(12) == "12 standard errors"


@pytest.mark.parametrize("gain, se, said", [
    (0.012, 0.004, "(b) − (a) = +1.2 ± 0.4 points (paired), more than two standard errors above zero."),
    (-0.012, 0.004, "(b) − (a) = −1.2 ± 0.4 points (paired), more than two standard errors below zero."),
    (0.008, 0.004, "(b) − (a) = +0.8 ± 0.4 points (paired), within two standard errors of zero: "
                   "this run cannot tell whether the loss helps."),
    (-0.003, 0.004, "(b) − (a) = −0.3 ± 0.4 points (paired), within two standard errors of zero: "
                    "this run cannot tell whether the loss helps."),
])
def test_paired_sentence_says_what_the_run_shows_either_way(gain, se, said):
    assert paired_sentence(gain, se, "(b) − (a)", "whether the loss helps") == said


def test_paired_sentence_follows_the_constant(monkeypatch):
    import vitcourse.stats as stats

    monkeypatch.setattr(stats, "CLEAR_SE", 3)
    said = stats.paired_sentence(0.025, 0.01, "B − A", "which is better")
    assert said.endswith("within three standard errors of zero: this run cannot tell which is better.")
