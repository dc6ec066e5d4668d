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
  grading time.
"""

from __future__ import annotations

import os
import threading

from . import channel as _channel
from .channel import RemoteObject

_local = threading.local()
SECRET_ENV = "AUTOGRADER_SECRET_SEED"


def current_channel():
    """The channel of the submission being graded in this thread (None in-process)."""
    return getattr(_local, "channel", None)


def set_current_channel(value) -> None:
    _local.channel = value


def _remote(obj) -> bool:
    return isinstance(obj, RemoteObject)


def parameters(model) -> list:
    """(name, tensor) for every parameter the model holds (its modules' parameter tables)."""
    if _remote(model):
        return model._parameters()
    return _channel.module_parameters(model)


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


def secret_seed() -> int:
    """The grading seed: the course's secret in the grader, 0 in-process (the course's tests)."""
    value = os.environ.get(SECRET_ENV, "")
    return int(value) if value.isdigit() else 0
