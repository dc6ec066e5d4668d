"""The narrow, typed channel between a student's kernel and the grader's tests.

Graded test cells never run in the student's interpreter. The grader runs them in its own
process (see execute.py), and every name they need from the submission crosses this channel:

* **plain values** travel by value and arrive as *exact* plain types: ``None``, ``bool``,
  ``int``, ``float``, ``str``, lists, tuples and dicts of them, NumPy arrays and scalars of
  numeric dtypes, ``torch`` tensors (plain ``torch.Tensor``, CPU, with their dtype and
  ``requires_grad`` flag), ``torch.device`` and ``torch.dtype``. A float subclass whose
  ``__eq__`` lies, an ndarray or tensor subclass, a dict with a lying ``__getitem__``: each is
  reduced to the plain value it stores, and the grader rebuilds that value from bytes;
* **everything else** (functions, models, data objects) stays in the kernel and is reached
  through a `RemoteObject` handle: calling it, reading an attribute or an item sends a request,
  the kernel runs the submission's code, and the answer comes back by the same rules;
* a model's parameters are read from its modules' own parameter tables (what it *has*), not
  from its ``parameters()`` method (what it *reports*).

Messages are one ``.npz`` file each (``allow_pickle=False``): a JSON header plus arrays. The
grader writes requests into a folder the kernel can only read and reads answers from a folder
it opened before any student code ran, refusing links and oversized files. Whatever the kernel
does to its own interpreter, all it can change is the *values* it answers with — and each
value is checked by grader code the submission never saw.
"""

from __future__ import annotations

import builtins
import importlib
import io
import json
import os
import re
import stat
import sys
from pathlib import Path

import numpy

MAX_MESSAGE_BYTES = 256 * 1024 * 1024
MAX_DEPTH = 32
# Modules a kernel name may stand for in the grader: re-imported here by name, never proxied.
SAFE_MODULES = re.compile(r"^(numpy|math|torch|vitcourse|einops|random|statistics)(\.[A-Za-z_][\w.]*)?$")
TENSOR_DTYPES = {"torch.float64", "torch.float32", "torch.float16", "torch.bfloat16", "torch.int64",
                 "torch.int32", "torch.int16", "torch.int8", "torch.uint8", "torch.bool"}
ARRAY_KINDS = "biuf"
DEVICE_NAME = re.compile(r"^(cpu|cuda|mps|meta)(:\d{1,2})?$")


class ChannelError(RuntimeError):
    """A message could not be carried (malformed, too large, or of a type the channel refuses)."""


class SubmissionError(Exception):
    """The submission's code raised while a test called it (subclassed per builtin type)."""


_raised_types: dict[type, type] = {}


def submission_exception(type_names: list[str], message: str) -> Exception:
    """A grader-side exception for an error raised in the kernel: an instance of the first builtin
    exception class in the kernel error's MRO (so `except ValueError` works) and SubmissionError."""
    base = Exception
    for name in type_names:
        candidate = getattr(builtins, name, None)
        if isinstance(candidate, type) and issubclass(candidate, Exception):
            base = candidate
            break
    if base not in _raised_types:
        _raised_types[base] = type(base.__name__, (base, SubmissionError), {})
    return _raised_types[base](f"{type_names[0] if type_names else 'error'} in the submission's code: {message}")


def _torch():
    return sys.modules.get("torch")


# ---- both sides: the parameter walk ---------------------------------------------------------

def module_parameters(module) -> list[tuple[str, object]]:
    """(name, tensor) for every parameter a torch module holds, read from each submodule's own
    ``_parameters`` table (shared tensors once) — never through methods the module may override."""
    get = object.__getattribute__
    found, seen_tensors, seen_modules = [], set(), set()

    def visit(node, prefix: str) -> None:
        if id(node) in seen_modules:
            return
        seen_modules.add(id(node))
        table = get(node, "__dict__")
        for name, tensor in dict.items(table.get("_parameters") or {}):
            if tensor is not None and id(tensor) not in seen_tensors:
                seen_tensors.add(id(tensor))
                found.append((prefix + name, tensor))
        for name, child in dict.items(table.get("_modules") or {}):
            if child is not None:
                visit(child, f"{prefix}{name}.")

    visit(module, "")
    return found


def _is_module(value) -> bool:
    torch = _torch()
    return torch is not None and isinstance(value, torch.nn.Module)


# ---- kernel side: encode answers, decode requests --------------------------------------------

class _KernelEncoder:
    def __init__(self, handles: dict):
        self.handles = handles
        self.arrays: dict[str, numpy.ndarray] = {}

    def _array(self, array) -> str:
        key = f"a{len(self.arrays)}"
        self.arrays[key] = array
        return key

    def encode(self, value, depth: int = 0):
        if depth > MAX_DEPTH:
            raise ChannelError("the value is nested too deeply")
        kind = type(value)
        if value is None or kind is bool:
            return value
        if isinstance(value, bool):
            return bool(int.__index__(value))
        if isinstance(value, int):
            return {"int": str(int.__index__(value))}
        if isinstance(value, float):
            return {"float": float.__repr__(float.__float__(value))}
        if isinstance(value, str):
            return {"str": str.__str__(value)}
        if isinstance(value, (list, tuple)):
            base = list if isinstance(value, list) else tuple
            items = [base.__getitem__(value, i) for i in range(base.__len__(value))]
            return {base.__name__: [self.encode(item, depth + 1) for item in items]}
        if isinstance(value, dict):
            return {"dict": [[self.encode(k, depth + 1), self.encode(v, depth + 1)] for k, v in dict.items(value)]}
        if isinstance(value, numpy.ndarray):
            array = numpy.array(value, subok=False, copy=True)
            if array.dtype.kind in ARRAY_KINDS:
                return {"ndarray": self._array(array)}
        if isinstance(value, numpy.generic):
            array = numpy.asarray(value)
            if array.dtype.kind in ARRAY_KINDS and array.ndim == 0:
                return {"npscalar": self._array(numpy.array(array, subok=False, copy=True))}
        torch = _torch()
        if torch is not None:
            if isinstance(value, torch.Tensor):
                encoded = self._tensor(torch, value)
                if encoded is not None:
                    return encoded
            if isinstance(value, torch.device):
                return {"device": str(value)}
            if isinstance(value, torch.dtype):
                return {"dtype": str(value)}
        if isinstance(value, type(sys)) and SAFE_MODULES.match(getattr(value, "__name__", "") or ""):
            return {"module": value.__name__}
        return self._handle(value)

    def _tensor(self, torch, value):
        with torch._C.DisableTorchFunction():
            if value.layout != torch.strided or value.is_quantized or str(value.dtype) not in TENSOR_DTYPES:
                return None
            requires_grad = bool(torch.Tensor.requires_grad.__get__(value))
            plain = torch.Tensor.detach(value).to("cpu")
            dtype = str(plain.dtype)
            if plain.dtype in (torch.bfloat16, torch.float16):
                plain = plain.to(torch.float32)
            array = numpy.array(plain.numpy(), subok=False, copy=True)
        return {"tensor": self._array(array), "dtype": dtype, "requires_grad": requires_grad}

    def _handle(self, value) -> dict:
        key = len(self.handles) + 1
        self.handles[key] = value
        mro = [f"{k.__module__}.{k.__qualname__}" for k in type(value).__mro__]
        return {"handle": key, "type": mro[0], "mro": mro, "callable": callable(value),
                "module": _is_module(value)}


def _kernel_decode(node, arrays, handles):
    if node is None or isinstance(node, bool):
        return node
    if isinstance(node, list):
        raise ChannelError("malformed request")
    key = next(iter(node))
    body = node[key]
    if key == "int":
        return int(body)
    if key == "float":
        return float(body)
    if key == "str":
        return body
    if key in ("list", "tuple"):
        items = [_kernel_decode(item, arrays, handles) for item in body]
        return items if key == "list" else tuple(items)
    if key == "dict":
        return {_kernel_decode(k, arrays, handles): _kernel_decode(v, arrays, handles) for k, v in body}
    if key == "ndarray":
        return arrays[body]
    if key == "npscalar":
        return arrays[body][()]
    if key == "tensor":
        import torch

        tensor = torch.from_numpy(numpy.array(arrays[body])).to(getattr(torch, node["dtype"].split(".")[1]))
        return tensor.requires_grad_(True) if node["requires_grad"] else tensor
    if key == "device":
        import torch

        return torch.device(body)
    if key == "dtype":
        import torch

        return getattr(torch, body.split(".")[1])
    if key == "module":
        return importlib.import_module(body)
    if key == "ref":
        return handles[body]
    if key == "model":
        cls = getattr(importlib.import_module(node["model"][0]), node["model"][1])
        config_cls = getattr(importlib.import_module(node["config_type"][0]), node["config_type"][1])
        config = config_cls(**_kernel_decode(node["config"], arrays, handles))
        model = cls(config)
        model.load_state_dict(_kernel_decode(node["state"], arrays, handles))
        return model.train(node["training"])
    raise ChannelError(f"unknown request value {key!r}")


def _user_namespace() -> dict:
    shell = sys.modules["IPython"].get_ipython()
    return shell.user_ns


_HANDLES: dict[int, object] = {}


def _run_op(request: dict, arrays) -> object:
    op = request["op"]
    decode = lambda node: _kernel_decode(node, arrays, _HANDLES)  # noqa: E731
    if op == "hold":
        return {"held": decode(request["value"])}
    if op == "bind":
        namespace = _user_namespace()
        return {name: namespace[name] for name in request["names"] if name in namespace}
    target = _HANDLES[request["target"]]
    if op == "getattr":
        return getattr(target, request["name"])
    if op == "getitem":
        return target[decode(request["key"])]
    if op == "call":
        args, kwargs = decode(request["args"]), decode(request["kwargs"])
        if request.get("mode") == "eval_no_grad":
            return _call_eval_no_grad(target, args, kwargs)
        if request.get("mode") == "backward":
            return _call_backward(target, args, kwargs)
        if request.get("mode") == "with_args":
            return {"result": target(*args, **kwargs), "args": args}
        return target(*args, **kwargs)
    if op == "parameters":
        return [[name, tensor] for name, tensor in module_parameters(target)]
    if op == "iter":
        return iter(target)
    if op == "next":
        try:
            return {"item": next(target)}
        except StopIteration:
            return {"stop": True}
    if op == "len":
        return len(target)
    raise ChannelError(f"unknown operation {op!r}")


def _call_eval_no_grad(model, args, kwargs):
    """Call a torch module in eval mode without gradients, set through torch's own Module.train
    (not a method the model may override), and put its mode back."""
    import torch

    was_training = object.__getattribute__(model, "__dict__").get("training", False)
    torch.nn.Module.train(model, False)
    try:
        with torch.no_grad():
            return model(*args, **kwargs)
    finally:
        torch.nn.Module.train(model, was_training)


def _call_backward(function, args, kwargs):
    """Call, backpropagate from the (scalar) result, and return it with the gradient of every
    tensor argument that asked for one (None where none arrived)."""
    result = function(*args, **kwargs)
    result.backward()
    leaves = [a for a in [*args, *kwargs.values()] if hasattr(a, "requires_grad") and a.requires_grad]
    return {"result": result, "grads": [leaf.grad for leaf in leaves]}


def serve(folder: str, number: int) -> None:
    """Kernel side: answer request `number` from `folder`/requests into `folder`/answers."""
    base = Path(folder)
    with numpy.load(base / "requests" / f"{number}.npz", allow_pickle=False) as message:
        arrays = {key: message[key] for key in message.files if key != "header"}
        request = json.loads(bytes(message["header"]).decode())
    encoder = _KernelEncoder(_HANDLES)
    try:
        header = {"ok": encoder.encode(_run_op(request, arrays))}
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the grader as data
        encoder.arrays.clear()
        header = {"error": {"mro": [k.__name__ for k in type(error).__mro__], "message": str(error)[:400]}}
    _write_message(base / "answers" / f"{number}.npz", header, encoder.arrays)


def _write_message(path: Path, header: dict, arrays: dict) -> None:
    buffer = io.BytesIO()
    numpy.savez(buffer, header=numpy.frombuffer(json.dumps(header).encode(), dtype=numpy.uint8), **arrays)
    partial = path.with_suffix(".part")
    partial.write_bytes(buffer.getvalue())
    os.replace(partial, path)


# ---- grader side ------------------------------------------------------------------------------

class KernelChannel:
    """The grader's end: sends requests, runs `serve` in the kernel, decodes answers strictly.

    run_in_kernel(code) executes one line in the student's kernel and raises when it could not
    (dead kernel, timeout). folder: created by the grader before the kernel starts.
    """

    def __init__(self, folder: Path, run_in_kernel, kernel_uid: int | None = None):
        self.folder = Path(folder)
        self.run_in_kernel = run_in_kernel
        self.count = 0
        self.folder.mkdir(mode=0o755)
        (self.folder / "requests").mkdir(mode=0o755)
        answers = self.folder / "answers"
        answers.mkdir(mode=0o700)
        if kernel_uid is not None:
            os.chown(answers, kernel_uid, kernel_uid)
        # Opened now, before any student code runs: replacing the folders (or the folder above,
        # which the kernel's user owns) with links later changes nothing the grader reads or writes.
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
        self._requests_fd = os.open(self.folder / "requests", flags)
        self._answers_fd = os.open(answers, flags)

    def close(self) -> None:
        for name in ("_requests_fd", "_answers_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def request(self, message: dict, arrays: dict | None = None, max_bytes: int | None = None):
        """Send `message`, have the kernel serve it, and decode its answer (refused when larger
        than `max_bytes`, or than MAX_MESSAGE_BYTES)."""
        self.count += 1
        number = self.count
        buffer = io.BytesIO()
        numpy.savez(buffer, header=numpy.frombuffer(json.dumps(message).encode(), dtype=numpy.uint8),
                    **(arrays or {}))
        fd = os.open(f"{number}.npz", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644,
                     dir_fd=self._requests_fd)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o644)
            handle.write(buffer.getvalue())
        serve = "__import__('autograder.sandbox.channel', fromlist=['serve']).serve"
        self.run_in_kernel(f"{serve}({str(self.folder)!r}, {number})")
        limit = min(max_bytes or MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES)
        header, answer_arrays = self._read_answer(number, limit)
        if "error" in header:
            error = header["error"]
            if not isinstance(error, dict):
                raise ChannelError("malformed answer from the kernel")
            names = [str(n) for n in error.get("mro", [])][:20]
            raise submission_exception(names, str(error.get("message", ""))[:400])
        if "ok" not in header:
            raise ChannelError("malformed answer from the kernel")
        return _GraderDecoder(self, answer_arrays).decode(header["ok"])

    def _read_answer(self, number: int, max_bytes: int = MAX_MESSAGE_BYTES):
        try:
            fd = os.open(f"{number}.npz", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=self._answers_fd)
        except OSError as error:
            raise ChannelError("the notebook's kernel gave the tests no answer (did a cell change how "
                               "code runs?)") from None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ChannelError("the kernel's answer is not a regular file")
            if info.st_size > max_bytes:
                raise ChannelError(f"the kernel's answer is larger than the {max_bytes / 2 ** 20:.0f} MiB "
                                   "this request allows")
            data = handle.read()
        try:
            with numpy.load(io.BytesIO(data), allow_pickle=False) as message:
                arrays = {key: message[key] for key in message.files if key != "header"}
                header = json.loads(bytes(message["header"]).decode())
        except ChannelError:
            raise
        except Exception as error:
            raise ChannelError(f"the kernel's answer could not be read ({type(error).__name__})") from None
        if not isinstance(header, dict):
            raise ChannelError("malformed answer from the kernel")
        return header, arrays

    # operations
    def op(self, op: str, max_bytes: int | None = None, **fields):
        encoder = _GraderEncoder()
        message = {"op": op}
        for key, value in fields.items():
            message[key] = encoder.encode(value) if key in ("args", "kwargs", "key", "value") else value
        return self.request(message, encoder.arrays, max_bytes)

    def bind(self, names: list[str]) -> dict:
        found = self.request({"op": "bind", "names": list(names)})
        if not isinstance(found, dict):
            raise ChannelError("malformed answer to bind")
        return {name: value for name, value in found.items() if isinstance(name, str) and name in names}


class _GraderDecoder:
    def __init__(self, channel: KernelChannel, arrays: dict):
        self.channel, self.arrays = channel, arrays

    def _array(self, key):
        if not isinstance(key, str) or key not in self.arrays:
            raise ChannelError("malformed answer: unknown array")
        array = self.arrays[key]
        if array.dtype.kind not in ARRAY_KINDS:
            raise ChannelError(f"the channel carries numeric arrays only, not {array.dtype}")
        return numpy.array(array, copy=True)

    def decode(self, node, depth: int = 0):
        if depth > MAX_DEPTH:
            raise ChannelError("the value is nested too deeply")
        if node is None or type(node) is bool:
            return node
        if type(node) is not dict or not node:
            raise ChannelError("malformed answer from the kernel")
        key = next(iter(node))
        body = node[key]
        if key == "int" and type(body) is str and re.fullmatch(r"-?\d{1,4000}", body):
            return int(body)
        if key == "float" and type(body) is str:
            return float(body)
        if key == "str" and type(body) is str:
            return body
        if key in ("list", "tuple") and type(body) is list:
            items = [self.decode(item, depth + 1) for item in body]
            return items if key == "list" else tuple(items)
        if key == "dict" and type(body) is list:
            out = {}
            for pair in body:
                if type(pair) is not list or len(pair) != 2:
                    raise ChannelError("malformed dict from the kernel")
                k = self.decode(pair[0], depth + 1)
                try:
                    hash(k)
                except TypeError:
                    raise ChannelError("a dict key from the kernel is not hashable") from None
                out[k] = self.decode(pair[1], depth + 1)
            return out
        if key == "ndarray":
            return self._array(body)
        if key == "npscalar":
            array = self._array(body)
            if array.ndim != 0:
                raise ChannelError("malformed NumPy scalar")
            return array[()]
        if key == "tensor":
            import torch

            dtype = node.get("dtype")
            if dtype not in TENSOR_DTYPES:
                raise ChannelError(f"unsupported tensor dtype {dtype!r}")
            tensor = torch.from_numpy(self._array(body)).to(getattr(torch, dtype.split(".")[1]))
            if node.get("requires_grad") is True and tensor.is_floating_point():
                tensor.requires_grad_(True)
            return tensor
        if key == "device" and type(body) is str and DEVICE_NAME.match(body):
            import torch

            return torch.device(body)
        if key == "dtype" and body in TENSOR_DTYPES:
            import torch

            return getattr(torch, body.split(".")[1])
        if key == "module" and type(body) is str and SAFE_MODULES.match(body):
            return importlib.import_module(body)
        if key == "handle" and type(body) is int:
            mro = [str(name)[:200] for name in node.get("mro", [])][:50] if type(node.get("mro")) is list else []
            return RemoteObject(self.channel, body, mro, callable_=node.get("callable") is True,
                                module=node.get("module") is True)
        raise ChannelError(f"malformed answer from the kernel ({str(key)[:40]!r})")


class _GraderEncoder:
    """Encodes the grader's arguments (its own trusted values) for the kernel."""

    def __init__(self):
        self.arrays: dict[str, numpy.ndarray] = {}

    def _array(self, array) -> str:
        key = f"a{len(self.arrays)}"
        self.arrays[key] = array
        return key

    def encode(self, value):
        if value is None or type(value) is bool:
            return value
        if type(value) is int:
            return {"int": str(value)}
        if type(value) is float:
            return {"float": repr(value)}
        if type(value) is str:
            return {"str": value}
        if type(value) in (list, tuple):
            return {type(value).__name__: [self.encode(item) for item in value]}
        if type(value) is dict:
            return {"dict": [[self.encode(k), self.encode(v)] for k, v in value.items()]}
        if isinstance(value, RemoteObject):
            return {"ref": value._id}
        if isinstance(value, numpy.ndarray) and value.dtype.kind in ARRAY_KINDS:
            return {"ndarray": self._array(numpy.array(value, copy=True))}
        if isinstance(value, numpy.generic):
            return {"npscalar": self._array(numpy.asarray(value))}
        torch = _torch()
        if torch is not None:
            if isinstance(value, torch.Tensor):
                plain = value.detach().cpu()
                dtype = str(plain.dtype)
                if plain.dtype in (torch.bfloat16, torch.float16):
                    plain = plain.float()
                return {"tensor": self._array(plain.numpy().copy()), "dtype": dtype,
                        "requires_grad": bool(value.requires_grad)}
            if isinstance(value, torch.device):
                return {"device": str(value)}
            if isinstance(value, torch.dtype):
                return {"dtype": str(value)}
            if isinstance(value, torch.nn.Module) and hasattr(value, "config"):
                return self._model(value)
        if isinstance(value, type(sys)):
            return {"module": value.__name__}
        raise ChannelError(f"a test cannot pass a {type(value).__name__} to the submission")

    def _model(self, model) -> dict:
        """A course model (class with a dataclass `config`) travels as class, config and weights."""
        import dataclasses

        config = model.config
        if not dataclasses.is_dataclass(config) or not type(model).__module__.startswith("vitcourse."):
            raise ChannelError(f"only course models can be passed to the submission, not {type(model).__name__}")
        fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        return {"model": [type(model).__module__, type(model).__qualname__],
                "config_type": [type(config).__module__, type(config).__qualname__],
                "config": self.encode(fields),
                "state": self.encode(dict(model.state_dict())),
                "training": bool(model.training)}


class RemoteObject:
    """A handle on an object that lives in the student's kernel.

    Calling it, reading an attribute or an item, iterating, and ``len`` run in the kernel; the
    answers come back through the channel. It has no truth value, no number conversions and
    compares equal only to itself, so it can never pass for a graded value.
    """

    __slots__ = ("_channel", "_id", "_mro", "_callable", "_module")

    def __init__(self, channel: KernelChannel, id_: int, mro: list[str], *, callable_: bool, module: bool):
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_id", id_)
        object.__setattr__(self, "_mro", tuple(mro))
        object.__setattr__(self, "_callable", callable_)
        object.__setattr__(self, "_module", module)

    @property
    def remote_type(self) -> str:
        """The qualified name of the object's type in the kernel, e.g. 'torch.nn...Sequential'."""
        return self._mro[0] if self._mro else "unknown"

    def remote_isinstance(self, qualified_name: str) -> bool:
        """Whether the kernel reports `qualified_name` among the type's bases."""
        return qualified_name in self._mro

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if self._module and name == "parameters":
            return lambda recurse=True: iter([tensor for _, tensor in self._parameters()])
        if self._module and name == "named_parameters":
            return lambda *args, **kwargs: iter(self._parameters())
        return self._channel.op("getattr", target=self._id, name=name)

    def _parameters(self, max_bytes: int | None = None) -> list:
        found = self._channel.op("parameters", max_bytes=max_bytes, target=self._id)
        if type(found) is not list or not all(type(p) is list and len(p) == 2 and type(p[0]) is str
                                              for p in found):
            raise ChannelError("malformed parameter list from the kernel")
        return [(name, tensor) for name, tensor in found]

    def __setattr__(self, name, value):
        raise AttributeError("a test cannot change an object of the submission")

    def __call__(self, *args, **kwargs):
        return self._channel.op("call", target=self._id, args=list(args), kwargs=dict(kwargs))

    def __getitem__(self, key):
        return self._channel.op("getitem", target=self._id, key=key)

    def __iter__(self):
        iterator = self._channel.op("iter", target=self._id)
        while True:
            step = iterator._channel.op("next", target=iterator._id) if isinstance(iterator, RemoteObject) else None
            if type(step) is not dict or step.get("stop") is True or "item" not in step:
                return
            yield step["item"]

    def __len__(self):
        length = self._channel.op("len", target=self._id)
        if type(length) is not int or length < 0:
            raise ChannelError("len() of a submission's object did not give a count")
        return length

    def __bool__(self):
        raise TypeError(f"an object of the submission ({self.remote_type}) has no truth value here")

    def __repr__(self) -> str:
        return f"<submission's {self.remote_type}>"
