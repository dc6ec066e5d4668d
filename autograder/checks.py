"""Comparisons for hidden tests: exact, canonical, with messages written for the student.

Test cells run in the grader's own process (autograder/sandbox/execute.py) on values that crossed
autograder/sandbox/channel.py, so they already see plain types; these checks add what a grade needs:
shapes compared exactly, real numbers only, NaN never "close", a string only equal to a real
`str`, truth only from a real True, and a message that names what failed. The course's own test
suite runs the same test cells in-process on the reference solution, where the captured
originals below keep the checks honest even if a cell under test patches numpy or builtins.

Usage in a hidden test (see autograder/README.md):

    ### BEGIN HIDDEN TESTS
    from autograder import checks, grading
    checks.assert_close(softmax(x), expected, what="softmax(x)")
    ### END HIDDEN TESTS
"""

from __future__ import annotations

import builtins
import sys

import numpy

_ORIGINAL_BUILTINS = dict(vars(builtins))
_isinstance = builtins.isinstance
_type = builtins.type
_float = builtins.float
_tuple = builtins.tuple
_repr = builtins.repr
# Comparisons use ufuncs and ndarray methods only (C code): numpy's Python-level helpers
# such as allclose/isclose call builtins like abs() that a student can replace.
_np_asarray = numpy.asarray
_np_abs = numpy.abs
_np_subtract = numpy.subtract
_np_add = numpy.add
_np_multiply = numpy.multiply
_np_less_equal = numpy.less_equal
_np_equal = numpy.equal
_np_float64 = numpy.float64
_np_ndarray = numpy.ndarray
_NUMPY_ORIGINALS = {
    (numpy, name): getattr(numpy, name)
    for name in ("allclose", "array_equal", "isclose", "asarray", "array", "all", "any")
}
_NUMPY_ORIGINALS.update({
    (numpy.testing, name): getattr(numpy.testing, name)
    for name in ("assert_allclose", "assert_array_equal", "assert_equal", "assert_array_almost_equal",
                 "assert_almost_equal")
})
_TORCH_ORIGINALS: dict = {}
_torch = sys.modules.get("torch")
if _torch is not None:
    _TORCH_ORIGINALS = {(_torch, name): getattr(_torch, name)
                        for name in ("allclose", "equal", "isclose", "all", "any")}
    _TORCH_ORIGINALS[(_torch.testing, "assert_close")] = _torch.testing.assert_close
    _TORCH_ORIGINALS.update({(_torch.Tensor, name): getattr(_torch.Tensor, name)
                             for name in ("detach", "cpu", "numpy", "tolist", "__eq__")})
    _tensor_to_numpy = _torch.Tensor.numpy
    _tensor_detach = _torch.Tensor.detach
    _tensor_cpu = _torch.Tensor.cpu
    _Tensor = _torch.Tensor

_sys_excepthook = sys.excepthook


def _ipython_shell():
    getter = sys.modules.get("IPython")
    return getter.get_ipython() if getter is not None else None


_shell = _ipython_shell()
_SHELL_ORIGINALS = {}
if _shell is not None:
    _SHELL_ORIGINALS = {name: getattr(_shell, name)
                        for name in ("showtraceback", "_showtraceback", "showsyntaxerror", "CustomTB",
                                     "custom_exceptions", "run_cell", "run_cell_async", "run_code",
                                     "run_ast_nodes")}


class CheckFailed(AssertionError):
    """Raised by every check; derives from the real AssertionError, captured at import."""


def _fail(message: str) -> None:
    raise CheckFailed(message)


def _as_array(value, what: str):
    """A numpy copy of `value` made with the original conversion functions."""
    if _TORCH_ORIGINALS and _isinstance(value, _Tensor):
        return _tensor_to_numpy(_tensor_cpu(_tensor_detach(value))).copy()
    try:
        return _np_asarray(value)
    except Exception as error:  # a student object that refuses conversion fails the check
        _fail(f"{what}: cannot be read as an array ({_type(error).__name__}: {error})")


def assert_shape(actual, shape, *, what: str = "value") -> None:
    """Fail unless `actual` (array or tensor) has exactly `shape`."""
    got = _tuple(_as_array(actual, what).shape)
    if got != _tuple(shape):
        _fail(f"{what}: expected shape {_tuple(shape)}, got {got}")


def assert_close(actual, expected, *, rtol: float = 1e-5, atol: float = 1e-8, what: str = "value") -> None:
    """Fail unless `actual` matches `expected` in shape and within rtol/atol elementwise."""
    got = _as_array(actual, what)
    want = _as_array(expected, "expected")
    if _tuple(got.shape) != _tuple(want.shape):
        _fail(f"{what}: expected shape {_tuple(want.shape)}, got {_tuple(got.shape)}")
    if got.dtype.kind not in "fiub" or want.dtype.kind not in "fiub":
        _fail(f"{what}: expected real numbers, got dtype {got.dtype}")
    got, want = got.astype(_np_float64), want.astype(_np_float64)
    diff = _np_abs(_np_subtract(got, want))
    bound = _np_add(atol, _np_multiply(rtol, _np_abs(want)))
    if not _np_less_equal(diff, bound).all():  # NaN compares False: it fails too
        _fail(f"{what}: not close to the expected values (largest difference {_float(diff.max()):.3g}; "
              f"rtol={rtol}, atol={atol})")


def assert_equal(actual, expected, *, what: str = "value") -> None:
    """Fail unless `actual` equals `expected` exactly (strings, numbers, arrays, tensors)."""
    if _isinstance(expected, str):
        if _type(actual) is not str or actual != expected:
            _fail(f"{what}: expected {_repr(expected)}, got {_repr(actual)[:200]}")
        return
    got = _as_array(actual, what)
    want = _as_array(expected, "expected")
    if _tuple(got.shape) != _tuple(want.shape) or not _np_equal(got, want).all():
        _fail(f"{what}: expected {_repr(expected)[:200]}, got {_repr(actual)[:200]}")


def assert_true(condition, message: str) -> None:
    """Fail with `message` unless `condition` is the real True (not a truthy impostor)."""
    if condition is not True and not (_isinstance(condition, numpy.bool_) and bool(condition)):
        _fail(message)


def restore() -> None:
    """Put back everything captured at import: numpy/torch functions, builtins, IPython hooks.

    Call it first in a hidden test so that plain `assert` and np.testing calls in the
    rest of the cell see the original objects too.
    """
    for name, value in _ORIGINAL_BUILTINS.items():
        if vars(builtins).get(name) is not value:
            setattr(builtins, name, value)
    for (owner, name), value in {**_NUMPY_ORIGINALS, **_TORCH_ORIGINALS}.items():
        if getattr(owner, name, None) is not value:
            setattr(owner, name, value)
    sys.excepthook = _sys_excepthook
    sys.settrace(None)
    sys.setprofile(None)
    for name, value in _SHELL_ORIGINALS.items():
        if getattr(_shell, name, None) is not value:
            setattr(_shell, name, value)
