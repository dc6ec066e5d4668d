"""The typed channel between a student's kernel and the grader (autograder/channel.py).

The kernel side runs here in-process (`serve` called directly), so each property is checked in
milliseconds; tests/test_autograder_hostile.py grades whole hostile notebooks through it.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from autograder import channel, grading
from autograder.channel import ChannelError, KernelChannel, RemoteObject


@pytest.fixture
def link(tmp_path):
    """A channel whose 'kernel' is this process: requests are served in-process."""
    folder = tmp_path / "channel"

    def run_in_kernel(code):
        try:
            channel.serve(str(folder), ch.count)
        except Exception as error:  # the real kernel would report an error output
            raise ChannelError(f"the kernel could not answer ({type(error).__name__})") from None

    ch = KernelChannel(folder, run_in_kernel)
    yield ch
    ch.close()


def remote(link, value) -> RemoteObject:
    """Put `value` in the kernel's handle table and return the grader's handle on it."""
    held = link.op("hold", value=None)  # any request works; then register the value directly
    key = max(channel._HANDLES, default=0) + 1
    channel._HANDLES[key] = value
    mro = [f"{k.__module__}.{k.__qualname__}" for k in type(value).__mro__]
    assert held == {"held": None}
    return RemoteObject(link, key, mro, callable_=callable(value),
                        module=isinstance(value, torch.nn.Module))


class LyingFloat(float):
    def __eq__(self, other):
        return True

    __hash__ = float.__hash__

    def __float__(self):
        return 0.99


class AlwaysEqual(np.ndarray):
    def __eq__(self, other):
        return np.ones(self.shape, dtype=bool)


class LyingModel(torch.nn.Module):
    """A one-layer model that reports the first ViT's 42,506 parameters."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)

    def parameters(self, recurse=True):
        yield torch.nn.Parameter(torch.zeros(42_506))

    def named_parameters(self, *args, **kwargs):
        yield "fake", torch.nn.Parameter(torch.zeros(42_506))

    def state_dict(self, *args, **kwargs):
        return {"fake": torch.zeros(42_506)}


def test_values_arrive_as_exact_plain_types(link):
    values = {"f": LyingFloat(0.5), "i": True, "n": 7, "s": "ViT", "l": [1, 2.5], "t": (None, "x"),
              "a": np.arange(6.0).reshape(2, 3).view(AlwaysEqual), "np": np.float32(0.25),
              "tensor": torch.ones(2, requires_grad=True), "bf16": torch.ones(3, dtype=torch.bfloat16),
              "device": torch.device("cpu")}
    back = link.op("call", target=remote(link, lambda: values)._id, args=[], kwargs={})
    assert type(back["f"]) is float and back["f"] == 0.5 and back["f"] != 0.7
    assert type(back["a"]) is np.ndarray and not (back["a"] == 99).all()
    assert type(back["np"]) is np.float32 and back["np"] == np.float32(0.25)
    assert type(back["tensor"]) is torch.Tensor and back["tensor"].requires_grad
    assert back["bf16"].dtype == torch.bfloat16
    assert back["l"] == [1, 2.5] and back["t"] == (None, "x") and back["device"] == torch.device("cpu")
    assert type(back["n"]) is int and back["i"] is True


def test_other_objects_stay_in_the_kernel_and_cannot_pass_for_values(link):
    obj = remote(link, object())
    assert isinstance(obj, RemoteObject)
    with pytest.raises(TypeError, match="no truth value"):
        bool(obj)
    assert obj != 0 and obj != obj._id
    with pytest.raises(TypeError):
        float(obj)
    with pytest.raises(AttributeError):
        obj.anything = 1


def test_a_models_parameters_are_counted_from_its_tables_not_its_methods(link):
    model = LyingModel()
    assert sum(p.numel() for p in model.parameters()) == 42_506  # what it reports
    handle = remote(link, model)
    assert grading.parameter_count(handle) == 4 * 2 + 2          # what it has
    assert grading.parameter_count(model) == 10
    assert sum(p.numel() for p in handle.parameters()) == 10     # visible tests' idiom, too
    assert grading.is_module(handle)


def test_eval_mode_calls_use_torchs_own_switch_and_restore_the_mode(link):
    class Sneaky(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(3, 2)

        def eval(self):          # refuses to leave train mode
            return self

        def forward(self, x):
            return self.layer(x) + (100.0 if self.training else 0.0)

    model = Sneaky().train()
    out = grading.logits(remote(link, model), torch.zeros(1, 3))
    assert float(out.abs().max()) < 50 and model.training


def test_exceptions_in_the_submission_keep_their_builtin_class(link):
    def broken(x):
        raise ValueError("no CLS token")

    with pytest.raises(ValueError, match="no CLS token") as caught:
        remote(link, broken)(1)
    assert isinstance(caught.value, channel.SubmissionError)


def test_gradients_and_inputs_after_the_call_come_back(link):
    def loss(a, b, c):
        return (a * 2).sum() + b.detach().sum()

    a, b = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    _, (grad_a, grad_b) = grading.with_gradients(remote(link, loss), a, b, 3)
    assert torch.equal(grad_a, torch.full((2,), 2.0)) and grad_b is None

    def in_place(x):
        x *= 2
        return x

    result, (after,) = grading.call_keeping_args(remote(link, in_place), np.ones(3))
    assert after.tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("header", [[1, 2], {"ok": {"int": "1e9"}}, {"ok": {"eval": "os.system('x')"}},
                                    {"ok": {"ndarray": "missing"}}, {"ok": {"tensor": "a0", "dtype": "object"}},
                                    {"nothing": 1}])
def test_malformed_answers_are_refused(link, header):
    folder = link.folder
    ch = KernelChannel(folder.parent / "other", lambda code: channel._write_message(
        folder.parent / "other" / "answers" / f"{ch.count}.npz", header, {"a0": np.zeros(1)}))
    with pytest.raises(ChannelError):
        ch.op("len", target=1)
    ch.close()


def test_an_answer_that_is_a_link_is_not_followed(tmp_path):
    folder = tmp_path / "channel"
    secret = tmp_path / "secret.npz"
    channel._write_message(secret, {"ok": {"str": "host file"}}, {})

    def plant(code):
        os.symlink(secret, folder / "answers" / f"{ch.count}.npz")

    ch = KernelChannel(folder, plant)
    with pytest.raises(ChannelError, match="gave the tests no answer"):
        ch.op("len", target=1)
    ch.close()


def test_requests_are_never_written_through_a_planted_link(tmp_path, link):
    target = tmp_path / "elsewhere"
    target.mkdir()
    # The kernel's user owns the folder above the channel: it may swap `requests` for a link.
    os.rename(link.folder / "requests", tmp_path / "moved")
    os.symlink(target, link.folder / "requests")
    with pytest.raises(ChannelError):
        link.op("len", target=1)
    assert list(target.iterdir()) == []
    assert json.loads(bytes(np.load(tmp_path / "moved" / "1.npz")["header"]).decode())["op"] == "len"
