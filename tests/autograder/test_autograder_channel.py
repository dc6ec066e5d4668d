"""The typed channel between a student's kernel and the grader (autograder/sandbox/channel.py).

The kernel side runs here in-process (`serve` called directly), so each property is checked in
milliseconds; tests/autograder/test_autograder_hostile.py grades whole hostile notebooks through it.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from autograder import grading
from autograder.sandbox import channel
from autograder.sandbox.channel import ChannelError, KernelChannel, RemoteObject


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


class SolutionLayout(torch.nn.Module):
    """The first ViT's parameter layout as the assignment's reference answer writes it."""

    def __init__(self, positions_shape=(49, 64)):
        super().__init__()
        self.embed = torch.nn.Linear(16, 64)
        self.positions = torch.nn.Parameter(torch.randn(*positions_shape) * 0.02)
        self.attention = torch.nn.MultiheadAttention(64, num_heads=4, batch_first=True)
        self.norm1 = torch.nn.LayerNorm(64)
        self.feed_forward = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(),
                                                torch.nn.Linear(128, 64))
        self.norm2 = torch.nn.LayerNorm(64)
        self.head = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                                        torch.nn.Linear(64, 10))

    def forward(self, patches):
        x = self.embed(patches) + self.positions
        mixed, _ = self.attention(x, x, x, need_weights=False)
        x = self.norm1(x + mixed)
        x = self.norm2(x + self.feed_forward(x))
        return self.head(x.mean(dim=1))


class Wrapper(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self._orig_mod = inner


def test_weights_load_into_the_reference_architecture_by_order_or_name(link):
    from vitcourse import assignment2

    torch.manual_seed(0)
    theirs = SolutionLayout(positions_shape=(1, 49, 64)).eval()   # other names, a (1, 49, 64) table
    mine = grading.load_weights(remote(link, theirs), assignment2.reference_model("ViT"))
    assert type(mine).__module__ == "vitcourse.first_vit" and not mine.training
    x = torch.rand(5, 49, 16)
    with torch.no_grad():
        assert torch.allclose(mine(x), theirs(x), atol=1e-5)
    # By name: the reference's own names, behind a torch.compile-style prefix.
    source = assignment2.reference_model("ViT")
    again = grading.load_weights(remote(link, Wrapper(source)), assignment2.reference_model("ViT"))
    assert all(torch.equal(a, b) for a, b in zip(again.parameters(), source.parameters()))


def test_weights_of_another_architecture_are_refused_with_what_was_expected(link):
    from vitcourse import assignment2

    with pytest.raises(ValueError, match=r"expected 8 parameters .*\(64, 1600\).*got 2 \(weight \(2, 3\)"):
        grading.load_weights(remote(link, torch.nn.Linear(3, 2)), assignment2.reference_model("CNN"))
    swapped = torch.nn.Sequential(torch.nn.Linear(1600, 64), torch.nn.Conv2d(1, 32, 3))
    with pytest.raises(ValueError, match="not those of the question's architecture"):
        grading.load_weights(swapped, assignment2.reference_model("CNN"))


def test_weights_are_parameters_only_by_value_and_size_capped(link):
    model = LyingModel()
    model.register_buffer("test_images", torch.zeros(2000, 784))   # a buffer never travels
    got = grading.weights(remote(link, model))
    assert [name for name, _ in got] == ["layer.weight", "layer.bias"]
    assert all(type(t) is torch.Tensor and t.dtype == torch.float32 for _, t in got)
    huge = torch.nn.Linear(1000, 5000)   # 5 M numbers: the answer is refused by its size, unread
    with pytest.raises(ChannelError, match="larger than"):
        grading.weights(remote(link, huge), max_numbers=1_000_000)
    with pytest.raises(ValueError, match="more than 1,000,000 numbers"):
        grading.weights(huge, max_numbers=1_000_000)


def test_the_test_split_flag_rule_and_where_flags_go():
    grading.IN_PROCESS_FLAGS.clear()
    assert not grading.flag_test_split_fit("q8 model_cnn", 0.93, 0.885, "unused training images")
    assert grading.flag_test_split_fit("q8 model_cnn", 0.99, 0.86, "the training images it trained on")
    assert grading.IN_PROCESS_FLAGS == ["trained on the test split? q8 model_cnn: 0.990 on the test split, "
                                        "0.860 on the training images it trained on"]
    collected: list = []
    grading.collect_flags(collected)
    try:
        grading.review_flag("a; b")
    finally:
        grading.collect_flags(None)
    assert collected == ["a, b"] and len(grading.IN_PROCESS_FLAGS) == 1
