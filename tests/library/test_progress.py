"""Training progress: a bar in a terminal, one line per epoch in a notebook, nothing when asked."""

import pytest
import torch

from vitcourse.progress import EpochLines, progress_bar, progress_mode
from vitcourse.training import fit


def test_not_a_terminal_means_one_line_per_epoch(monkeypatch):
    monkeypatch.delenv("VITCOURSE_PROGRESS", raising=False)
    assert progress_mode() == "epochs"        # pytest captures stderr: not a TTY
    assert isinstance(progress_bar(10, "x"), EpochLines)


def test_override_and_bad_value(monkeypatch):
    monkeypatch.setenv("VITCOURSE_PROGRESS", "bar")
    assert progress_mode() == "bar" and not isinstance(progress_bar(10, "x"), EpochLines)
    monkeypatch.setenv("VITCOURSE_PROGRESS", "loud")
    with pytest.raises(ValueError, match="VITCOURSE_PROGRESS='loud' is not one of auto, bar, epochs, none"):
        progress_mode()


def test_fit_prints_exactly_one_line_per_epoch(monkeypatch, capsys):
    monkeypatch.delenv("VITCOURSE_PROGRESS", raising=False)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    x, y = torch.randn(32, 2, 2), torch.randint(0, 2, (32,))
    fit(model, x, y, x_val=x, y_val=y, epochs=3, batch_size=8, seed=0, device="cpu")
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 3, lines
    assert lines[-1].startswith("training Sequential: step 12/12, val_acc ")
    assert captured.err == ""                 # no bar fragments


def test_progress_false_is_silent(monkeypatch, capsys):
    monkeypatch.delenv("VITCOURSE_PROGRESS", raising=False)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    x, y = torch.randn(16, 2, 2), torch.randint(0, 2, (16,))
    fit(model, x, y, x_val=x, y_val=y, epochs=2, batch_size=8, seed=0, device="cpu", progress=False)
    assert capsys.readouterr() == ("", "")
