"""What hidden tests use to look at a submission: the same calls in the grader and in-process.

In the grader, test cells run in the grader's own process and the submission's functions and
models are `channel.RemoteObject` handles (see channel.py); in the course's own test suite the
same test cells run in-process on real objects. Each helper here does the same thing for both,
and none of them asks the submission's objects how to do it:

* `parameter_count(model)` counts the tensors in the model's parameter tables;
* `logits(model, x)` / `accuracy(model, x, y)` run the model in eval mode without gradients,
  switched by torch's own ``Module.train``, whatever the model's ``eval`` does;
* `is_module(obj)` asks whether the object is a ``torch.nn.Module``;
* `with_gradients(fn, *args)` calls, backpropagates and returns the gradients of the arguments;
* `in_submission(model)` places a copy of a course model in the submission's kernel, so a test
  can see what the submission's code did to it;
* `secret_seed()` the course's grading seed (never in a student's kernel), for inputs chosen at
  grading time;
* `weights(model)` the model's parameters *by value* (size-capped), and `load_weights(model,
  reference)` those tensors loaded into the course's reference architecture, a module of the
  grader's own: a graded accuracy is computed from it, in this process, by code the submission
  never ran (see "Accuracy from weights" in autograder/README.md);
* `review_flag(message)` a note for the instructor (the `review_flags` of `grade` and `export`):
  it changes no score; `flag_test_split_fit(...)` raises one for a model that scores far better
  on the public test split than on held-out images.
"""

from __future__ import annotations

import threading

from autograder.sandbox import channel as _channel
from autograder.sandbox.channel import RemoteObject

_local = threading.local()
# The most numbers a graded model's parameters may hold when they cross the channel (the course's
# models hold about 0.1 M; a bigger answer is refused before it is read).
MAX_WEIGHT_NUMBERS = 4_000_000
# A model is flagged when it scores this much better on the public test split than on held-out
# images (2,000 images a side: the difference of two honest accuracies has a standard deviation
# of about 0.013, so 0.05 is ~4 of them). See "Trained on the test split?" in autograder/README.md.
TEST_SPLIT_GAP = 0.05
# Wrappers whose parameter names get a prefix: torch.compile (`_orig_mod.`), DataParallel (`module.`).
WRAPPER_PREFIXES = ("_orig_mod.", "module.")
IN_PROCESS_FLAGS: list[str] = []   # review flags raised where no grader collects them (course tests)


def current_channel():
    """The channel of the submission being graded in this thread (None in-process)."""
    return getattr(_local, "channel", None)


def set_current_channel(value) -> None:
    _local.channel = value


def set_secret_seed(value: int | None) -> None:
    """The grader sets the course's secret seed for the test cells it runs in this thread."""
    _local.seed = value


def _remote(obj) -> bool:
    return isinstance(obj, RemoteObject)


def parameters(model, *, max_numbers: int | None = None) -> list:
    """(name, tensor) for every parameter the model holds (its modules' parameter tables).

    max_numbers: refuse (ValueError) a model whose parameters hold more numbers than that; for a
    submission's model the answer is refused by its size before it is read.
    """
    if _remote(model):
        limit = None if max_numbers is None else 8 * max_numbers + 1024 * 1024
        found = model._parameters(max_bytes=limit)
    else:
        found = _channel.module_parameters(model)
    if max_numbers is not None and sum(int(t.numel()) for _, t in found) > max_numbers:
        raise ValueError(f"the model's parameters hold more than {max_numbers:,} numbers")
    return found


def parameter_count(model, *, trainable_only: bool = True) -> int:
    """How many numbers the model's parameters hold (only those with requires_grad by default)."""
    return sum(int(t.numel()) for _, t in parameters(model) if t.requires_grad or not trainable_only)


def is_module(obj) -> bool:
    """Whether `obj` is a torch.nn.Module (for a submission's object: its type's bases say so)."""
    if _remote(obj):
        return obj.remote_isinstance("torch.nn.modules.module.Module")
    import torch

    return isinstance(obj, torch.nn.Module)


def logits(model, inputs):
    """model(inputs) in eval mode without gradients; the model's mode is put back afterwards."""
    if _remote(model):
        out = model._channel.op("call", target=model._id, args=[inputs], kwargs={}, mode="eval_no_grad")
    else:
        out = _channel._call_eval_no_grad(model, [inputs], {})
    import torch

    if type(out) is not torch.Tensor:
        raise TypeError(f"the model must return a tensor of logits, got {type(out).__name__}")
    return out


def accuracy(model, inputs, labels, *, batch: int = 1000) -> float:
    """Fraction of `labels` that argmax(logits) gets right, in batches of `batch`."""
    correct = 0
    for start in range(0, len(labels), batch):
        scores = logits(model, inputs[start:start + batch])
        if tuple(scores.shape) != (len(labels[start:start + batch]), scores.shape[-1]) or scores.dim() != 2:
            raise ValueError(f"the model must map a batch of {len(labels[start:start + batch])} to "
                             f"(batch, classes) logits, got {tuple(scores.shape)}")
        correct += int((scores.argmax(dim=-1) == labels[start:start + batch]).sum())
    return correct / len(labels)


def with_gradients(function, *args, **kwargs):
    """(result, grads): call, backpropagate from the scalar result, and return the gradient of
    each tensor argument that requires one (None where no gradient arrived)."""
    if _remote(function):
        out = function._channel.op("call", target=function._id, args=list(args), kwargs=dict(kwargs),
                                   mode="backward")
    else:
        out = _channel._call_backward(function, list(args), dict(kwargs))
    if type(out) is not dict or set(out) != {"result", "grads"} or type(out["grads"]) is not list:
        raise TypeError("the call did not give a result and gradients")
    return out["result"], out["grads"]


def call_keeping_args(function, *args):
    """(result, args after the call): shows whether the function changed its inputs in place."""
    if _remote(function):
        out = function._channel.op("call", target=function._id, args=list(args), kwargs={}, mode="with_args")
        if type(out) is not dict or set(out) != {"result", "args"}:
            raise TypeError("the call did not give a result and its arguments")
        return out["result"], out["args"]
    return function(*args), list(args)


def in_submission(model):
    """A copy of a course model in the submission's kernel (in-process: the model itself)."""
    channel = current_channel()
    if channel is None:
        return model
    held = channel.op("hold", value=model)
    if type(held) is not dict or not isinstance(held.get("held"), RemoteObject):
        raise _channel.ChannelError("the kernel did not hold the model")
    return held["held"]


def weights(model, *, max_numbers: int = MAX_WEIGHT_NUMBERS) -> list[tuple[str, object]]:
    """(name, float32 tensor) for every parameter of `model`, by value, in registration order.

    Only parameters (no buffers, no code) and at most `max_numbers` numbers. For a submission's
    model they are copies of the tensors its kernel sent: what the grader computes from them is
    the grader's own result, whatever the kernel's code does.
    """
    import torch

    found = parameters(model, max_numbers=max_numbers)
    out = []
    for name, tensor in found:
        if type(name) is not str or not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            raise ValueError(f"parameter {str(name)[:80]!r} is not a floating-point tensor")
        out.append((_unwrapped(name), tensor.detach().to(torch.float32).clone()))
    return out


def _unwrapped(name: str) -> str:
    """`name` without the prefixes wrappers such as torch.compile add."""
    while name.startswith(WRAPPER_PREFIXES):
        name = name.split(".", 1)[1]
    return name


def _fits(tensor, shape: tuple) -> bool:
    """Whether `tensor` has `shape`, allowing extra leading axes of size 1 ((1, 49, 64) for (49, 64))."""
    got = tuple(tensor.shape)
    while len(got) > len(shape) and got[0] == 1:
        got = got[1:]
    return got == shape


def load_weights(model, reference):
    """`reference` (a torch module of the grader's: the course's architecture for the question)
    with the parameters of `model` loaded into it, in eval mode.

    Matched by name (as the question lists them; wrapper prefixes such as ``_orig_mod.`` are
    ignored), else by order when every shape agrees in turn. Raises ValueError listing the
    expected names and shapes otherwise. Only parameters travel: the reference's own code, never
    the submission's, computes with them.
    """
    import torch

    theirs = weights(model, max_numbers=max(4 * sum(int(p.numel()) for p in reference.parameters()), 1024))
    ours = list(reference.named_parameters())
    expected = [(name, tuple(p.shape)) for name, p in ours]
    by_name = dict(theirs)
    if len(by_name) == len(theirs) and set(by_name) == {name for name, _ in ours}:
        pairs = [(p, by_name[name]) for name, p in ours]
    elif len(theirs) == len(ours):
        pairs = [(p, tensor) for (_, p), (_, tensor) in zip(ours, theirs)]
    else:
        pairs = []
    if not pairs or not all(_fits(tensor, tuple(p.shape)) for p, tensor in pairs):
        got = ", ".join(f"{name} {tuple(t.shape)}" for name, t in theirs[:30])
        want = ", ".join(f"{name} {shape}" for name, shape in expected)
        raise ValueError(f"the model's parameters are not those of the question's architecture: expected "
                         f"{len(expected)} parameters ({want}), got {len(theirs)} ({got})")
    with torch.no_grad():
        for p, tensor in pairs:
            p.copy_(tensor.reshape(p.shape))
    return reference.eval()


def review_flag(message: str) -> None:
    """Note `message` for the instructor's review (grading log, `export`'s review_flags); no score
    changes. In-process (the course's tests) it is kept in IN_PROCESS_FLAGS."""
    text = " ".join(str(message).replace(";", ",").split())[:300]
    collected = getattr(_local, "flags", None)
    (IN_PROCESS_FLAGS if collected is None else collected).append(text)


def collect_flags(into: list | None) -> None:
    """Send this thread's review flags to `into` (a list the grader reads afterwards), or stop."""
    _local.flags = into


def flag_test_split_fit(what: str, test_acc: float, heldout_acc: float, heldout: str) -> bool:
    """Flag `what` when it scores more than TEST_SPLIT_GAP better on the public test split than on
    `heldout` images (ones it was not meant to have seen, or the training images it was trained
    on); returns whether it did."""
    if test_acc - heldout_acc <= TEST_SPLIT_GAP:
        return False
    review_flag(f"trained on the test split? {what}: {test_acc:.3f} on the test split, "
                f"{heldout_acc:.3f} on {heldout}")
    return True


def secret_seed() -> int:
    """The grading seed: the course's secret in the grader, 0 in-process (the course's tests)."""
    value = getattr(_local, "seed", None)
    return 0 if value is None else int(value)
