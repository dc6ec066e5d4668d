"""How sure a run's accuracy comparison is: standard errors of test accuracies, and the one rule
the chapters use to call a difference clear.

* :func:`binomial_se` — the standard error of one accuracy measured on ``n`` test images.
* :func:`paired_gain` — how much more often one model is right than another on the same test
  images, with the standard error of that difference.
* :data:`CLEAR_SE` and :func:`is_clear` — a difference is clear when it lies more than
  ``CLEAR_SE`` standard errors from zero.
* :func:`paired_sentence` — what a chapter may write about a paired difference, true whichever
  way the run came out.

A chapter states an effect only when it clears a margin measured in these errors.
"""

from __future__ import annotations

import math

import torch

from vitcourse.report import fmt

# A difference counts as clear when it lies more than this many standard errors from zero.
CLEAR_SE = 2

_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


def binomial_se(accuracy: float, n: int) -> float:
    """The standard error √(p(1 − p)/n) of an accuracy ``p`` measured on ``n`` independent images.

    >>> round(binomial_se(0.5, 10_000), 4)
    0.005
    """
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be a fraction in [0, 1] (0.73 for 73 %), got {accuracy}")
    if n < 1:
        raise ValueError(f"n must be the number of test images (at least 1), got {n}")
    return math.sqrt(accuracy * (1.0 - accuracy) / n)


def _paired(right_a, right_b) -> tuple[torch.Tensor, torch.Tensor]:
    """Two per-image correctness vectors as float tensors of one length ≥ 2 (else ValueError)."""
    a = torch.as_tensor(right_a).detach().cpu().flatten().double()
    b = torch.as_tensor(right_b).detach().cpu().flatten().double()
    if a.shape != b.shape or len(a) < 2:
        raise ValueError("need two per-image correctness vectors of one length ≥ 2, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    return a, b


def paired_gain(right_a, right_b) -> tuple[float, float]:
    """How much more often model B is right than model A on the same test images,
    with its standard error.

    right_a, right_b: per-image correctness (N,) of the two models (bool or 0/1, or
    the share of several runs that got image i right), image i the same in both.
    Returns ``(gain, standard_error)`` as fractions (0.03 = 3 points): the mean of
    d_i = b_i - a_i and sd(d) / √N. Pairing removes what both models get right or
    wrong together, so this is tighter than comparing two independent accuracies.
    """
    a, b = _paired(right_a, right_b)
    d = b - a
    return float(d.mean()), float(d.std(unbiased=True) / len(d) ** 0.5)


def is_clear(difference: float, se: float) -> bool:
    """Whether ``difference`` lies more than :data:`CLEAR_SE` standard errors ``se`` from zero."""
    if se < 0:
        raise ValueError(f"a standard error is ≥ 0, got {se}")
    return abs(difference) > CLEAR_SE * se


def standard_errors(count: int | None = None) -> str:
    """``count`` standard errors in words, for prose; by default :data:`CLEAR_SE` of them
    ("two standard errors" while it is 2)."""
    count = CLEAR_SE if count is None else count
    return f"{_WORDS.get(count, count)} standard error{'' if count == 1 else 's'}"


def paired_sentence(gain: float, se: float, difference: str, undecided: str) -> str:
    """One sentence about a paired difference ``gain`` ± ``se`` (fractions, as :func:`paired_gain`
    returns them), true whichever way the run came out.

    ``difference`` names it ("(c) − (b)"); ``undecided`` is what the run cannot tell when the
    difference is not clear (:func:`is_clear`), e.g. "whether the token adds to the loss".

    >>> paired_sentence(0.012, 0.004, "(b) − (a)", "whether the loss alone helps")
    '(b) − (a) = +1.2 ± 0.4 points (paired), more than two standard errors above zero.'
    >>> print(paired_sentence(-0.003, 0.004, "(c) − (b)", "whether the token adds to the loss"))
    (c) − (b) = −0.3 ± 0.4 points (paired), within two standard errors of zero: this run cannot tell whether the token adds to the loss.
    """
    said = f"{difference} = {fmt(gain, 'points')} ± {fmt(100 * se, 'dec1')} points (paired), "
    if not is_clear(gain, se):
        return f"{said}within {standard_errors()} of zero: this run cannot tell {undecided}."
    return f"{said}more than {standard_errors()} {'above' if gain > 0 else 'below'} zero."


__all__ = ["CLEAR_SE", "binomial_se", "is_clear", "paired_gain", "paired_sentence", "standard_errors"]
