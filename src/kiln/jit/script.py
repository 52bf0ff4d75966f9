"""``kiln.jit.script``: functions and modules compiled from their source.

A :class:`ScriptFunction` runs the checked AST of its function (:mod:`kiln.jit.interp`):
eagerly it computes, inside ``kiln.trace`` / ``kiln.compile`` its tensor control flow
becomes ``cond`` / ``while_loop`` / ``fori_loop`` nodes. :attr:`ScriptFunction.graph` and
:attr:`ScriptFunction.code` are those of a trace on the arguments of the last call.
"""

from __future__ import annotations

import ast
import copy
import inspect
import os
import types
from collections.abc import Callable
from typing import Any

from kiln.core.tensor import Tensor
from kiln.core.trace_state import current
from kiln.errors import ArgumentError, ScriptError
from kiln.jit.frontend import Parsed, Source, parse, parse_text, signature_of
from kiln.jit.interp import Interpreter, closure_of
from kiln.nn.module import Module

_CACHE: dict[Any, Parsed] = {}


def ignore(fn: Callable) -> Callable:
    """Leave ``fn`` as Python: a scripted caller calls it as it is (TorchScript's
    ``@torch.jit.ignore``). Its work is not compiled; what it does on tracers is traced.

    >>> import kiln
    >>> @kiln.jit.ignore
    ... def shapes(x):
    ...     return list(x.shape)
    >>> shapes(kiln.ones(2))
    [2]
    """
    return _mark(fn, "ignore")


def _mark(fn: Callable, how: str) -> Callable:
    fn._kiln_jit = how  # type: ignore[attr-defined]
    return fn


def unused(fn: Callable) -> Callable:
    """Mark ``fn`` as never called from scripted code: calling it there raises a
    ScriptError (TorchScript's ``@torch.jit.unused``).

    >>> import kiln
    >>> unused_fn = kiln.jit.unused(lambda x: x)
    >>> getattr(unused_fn, "_kiln_jit")
    'unused'
    """
    return _mark(fn, "unused")


# (module, qualname) -> the overload declarations of a function, in order
_OVERLOADS: dict[tuple[str, str], list[Callable]] = {}


def _overload(fn: Callable) -> Callable:
    """Declare one signature of an overloaded function (TorchScript's
    ``torch.jit._overload``): its body is ``...``; the ``def`` without the decorator that
    follows is the implementation. A scripted call binds its arguments to the first
    declaration they fit (names, count and annotated types), with that declaration's
    defaults, and runs the implementation.

    >>> import kiln
    >>> @kiln.jit._overload
    ... def scale(x, k: int = 2): ...
    >>> @kiln.jit._overload
    ... def scale(x, k: float): ...
    >>> def scale(x, k):
    ...     return x * k
    >>> kiln.jit.script(scale)(kiln.ones(1)).tolist()
    [2.0]
    """
    _OVERLOADS.setdefault((fn.__module__, fn.__qualname__), []).append(fn)
    return fn


def _parsed(fn: Callable) -> Parsed:
    key = fn.__code__
    got = _CACHE.get(key)
    if got is None:
        got = _CACHE[key] = parse(fn)
    return got


# ---------------------------------------------------------------------------------------
# annotations: read from the AST (never evaluated), checked on every call

_SIMPLE = {"Tensor": Tensor, "int": int, "float": float, "bool": bool, "str": str}


def _type_name(node: ast.expr | None) -> str:
    return "Tensor" if node is None else ast.unparse(node)


def _check_type(value: Any, ann: ast.expr | None, src: Source, name: str) -> None:
    if not _matches(value, ann):
        raise ArgumentError(f"argument {name!r} must be {_type_name(ann)}, got "
                            f"{type(value).__name__}")


def _head(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Constant) and node.value is None:
        return "None"
    return ""


def _matches(value: Any, ann: ast.expr | None) -> bool:
    if ann is None:
        return isinstance(value, Tensor)
    if isinstance(ann, ast.Subscript):
        head = _head(ann.value)
        args = ann.slice.elts if isinstance(ann.slice, ast.Tuple) else [ann.slice]
        if head == "Optional":
            return value is None or _matches(value, args[0])
        if head in ("List", "list"):
            return isinstance(value, list) and all(_matches(v, args[0]) for v in value)
        if head in ("Tuple", "tuple"):
            if len(args) == 2 and isinstance(args[1], ast.Constant) and args[1].value is ...:
                return isinstance(value, tuple) and all(_matches(v, args[0]) for v in value)
            return isinstance(value, tuple) and len(value) == len(args) and all(
                _matches(v, a) for v, a in zip(value, args, strict=True))
        if head in ("Dict", "dict"):
            return isinstance(value, dict) and all(
                _matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items())
        return True  # a generic we do not check
    if isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):  # X | None
        return _matches(value, ann.left) or _matches(value, ann.right)
    head = _head(ann)
    if head == "None":
        return value is None
    want = _SIMPLE.get(head)
    if want is None:
        return True  # a user class or module type: not checked
    if want is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, want)


# ---------------------------------------------------------------------------------------


# A saved script file holds one program per input signature a function was called with;
# these many at most (the most recent), as a compiled function's save keeps its traces.
MAX_SAVED_SIGNATURES = 8


def _signature_key(args: tuple, kwargs: dict) -> Any:
    """What makes two calls need different programs: the argument structure, each tensor's
    shape and dtype, and the other values (a trace specializes on them)."""
    from kiln.base.pytree import tree_flatten

    leaves, spec = tree_flatten((args, kwargs))
    parts: list[Any] = []
    for leaf in leaves:
        if isinstance(leaf, Tensor):
            parts.append(("tensor", tuple(leaf.shape), str(leaf.dtype)))
        elif leaf is None or isinstance(leaf, (bool, int, float, str)):
            parts.append((type(leaf).__name__, leaf))
        else:
            parts.append(("object", id(leaf)))
    return str(spec), tuple(parts)


def _remember(seen: dict[Any, tuple], args: tuple, kwargs: dict) -> None:
    """Record a call's signature; the order stays that of first calls, so the first saved
    program is the first signature (the oldest is dropped past the limit)."""
    key = _signature_key(args, kwargs)
    seen[key] = (args, kwargs)
    while len(seen) > MAX_SAVED_SIGNATURES:
        seen.pop(next(iter(seen)))


class ScriptFunction:
    """A function compiled by :func:`script`.

    >>> import kiln
    >>> def f(x, scale: float = 2.0):
    ...     if x.sum() > 0:
    ...         return x * scale
    ...     return -x
    >>> sf = kiln.jit.script(f)
    >>> sf(kiln.ones(2)).tolist(), sf(-kiln.ones(2)).tolist()
    ([2.0, 2.0], [1.0, 1.0])
    >>> "if bool(" in sf.code
    True
    """

    def __init__(self, fn: Callable | None, bound_self: Any = None,
                 parsed: Parsed | None = None, globals_: dict | None = None) -> None:
        if fn is not None and getattr(fn, "_kiln_jit", None) is not None:
            raise ScriptError(f"kiln.jit.script: {fn.__qualname__} is marked "
                              f"@kiln.jit.{fn._kiln_jit}; it cannot be scripted")
        self._self = bound_self
        # Kiln's own modules and functions are trace-safe Python: they run as they are.
        self._native = fn is not None and not _user_code(fn)
        if self._native:
            self._signature = inspect.signature(fn)
            name, qualname, doc = fn.__name__, fn.__qualname__, fn.__doc__
            self._fn = fn
        elif fn is not None:
            self._parsed = _parsed(fn)
            self._signature = inspect.signature(fn)
            self._globals, self._closure = fn.__globals__, closure_of(fn)
            name, qualname, doc = fn.__name__, fn.__qualname__, fn.__doc__
            self._overloads = [(inspect.signature(d), _parsed(d))
                               for d in _OVERLOADS.get((fn.__module__, fn.__qualname__), ())
                               if d is not fn]
        else:  # a method defined from source text (ScriptModule.define)
            assert parsed is not None
            self._parsed = parsed
            self._signature = signature_of(parsed.fn, parsed.source)
            self._globals, self._closure = dict(globals_ or {}), {}
            name = qualname = parsed.fn.name
            doc = None
        params = list(self._signature.parameters.values())
        # What callers (kiln.trace's dynamic=, leaf names) see: the parameters after self.
        self.__signature__ = self._signature.replace(
            parameters=params[1:] if bound_self is not None else params)
        self._last: tuple | None = None
        self._seen: dict[Any, tuple] = {}  # signature key -> (args, kwargs), first-called first
        self.__name__ = name
        self.__qualname__ = qualname
        self.__doc__ = doc

    @property
    def name(self) -> str:
        return self.__name__

    def _bind(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        if self._native:
            return {}
        if getattr(self, "_overloads", None):
            return self._bind_overload(args, kwargs)
        params = list(self._parsed.fn.args.args)
        pre = (self._self,) if self._self is not None else ()
        try:
            bound = self._signature.bind(*pre, *args, **kwargs)
        except TypeError as e:
            raise ArgumentError(f"{self.__qualname__}: {e}") from None
        bound.apply_defaults()
        env = dict(bound.arguments)
        for k, p in enumerate(params):
            if k == 0 and self._self is not None:
                continue
            _check_type(env[p.arg], p.annotation, self._parsed.source, p.arg)
        return env

    def _bind_overload(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        pre = (self._self,) if self._self is not None else ()
        impl = [p.arg for p in self._parsed.fn.args.args]
        for sig, parsed in self._overloads:
            try:
                bound = sig.bind(*pre, *args, **kwargs)
            except TypeError:
                continue
            bound.apply_defaults()
            env = dict(bound.arguments)
            params = parsed.fn.args.args[len(pre):]
            if [p.arg for p in parsed.fn.args.args] != impl:
                raise ScriptError(f"{self.__qualname__}: an overload declares parameters "
                                  f"{[p.arg for p in parsed.fn.args.args]}, the "
                                  f"implementation {impl}; they must have the same names")
            if all(_matches(env[p.arg], p.annotation) for p in params):
                return env
        sigs = "; ".join(str(sig) for sig, _ in self._overloads)
        raise ArgumentError(f"{self.__qualname__}: no overload accepts these arguments "
                            f"(declared: {sigs})")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        env = self._bind(args, kwargs)
        if current() is None:  # an eager call: its arguments are the example for .graph
            self._last = (args, kwargs)
            _remember(self._seen, args, kwargs)
        if self._native:
            pre = (self._self,) if self._self is not None else ()
            return self._fn(*pre, *args, **kwargs)
        return Interpreter(self._parsed, self._globals, self._closure, _CALLS).run(env)

    # views ---------------------------------------------------------------------------
    def graph_module(self, *args: Any, **kwargs: Any) -> Any:
        """The GraphModule of a trace on ``args`` (default: the last call's)."""
        from kiln.tracing.trace import trace

        if not args and not kwargs:
            if self._last is None:
                raise ScriptError(f"{self.__qualname__}: its graph is built from example "
                                  "inputs; call it once (or pass them to graph_module())")
            args, kwargs = self._last
        if isinstance(self._self, ScriptModule) and self._self.forward is self:
            # forward of a module: traced through the module, so parameters keep their
            # names (fc.weight) and the hooks are in the graph
            return trace(self._self, *args, **kwargs)
        return trace(self, *args, **kwargs)

    @property
    def graph(self) -> Any:
        return self.graph_module().graph

    def program(self, *args: Any, **kwargs: Any) -> Any:
        """The :class:`~kiln.jit.program.ScriptProgram` of a trace on ``args``, or by default
        of one trace per input signature it was called with (the last
        :data:`MAX_SAVED_SIGNATURES`): what ``save`` writes."""
        from kiln.jit.program import ScriptProgram

        if args or kwargs or len(self._seen) < 2:
            return ScriptProgram(self.graph_module(*args, **kwargs))
        return ScriptProgram([self.graph_module(*a, **kw) for a, kw in self._seen.values()])

    @property
    def code_with_constants(self) -> tuple[str, dict]:
        return self.program().code_with_constants

    def dump_to_str(self, code: bool = True, attrs: bool = True, params: bool = True) -> str:
        return self.program().dump_to_str(code, attrs, params)

    def dump(self, code: bool = True, attrs: bool = True, params: bool = True) -> None:
        print(self.dump_to_str(code, attrs, params))

    def save(self, path: Any, _extra_files: Any = None) -> None:
        """Save the program of every input signature it was called with (see docs/jit.md)."""
        self.program().save(path, _extra_files)

    def save_to_buffer(self, _extra_files: Any = None) -> bytes:
        return self.program().save_to_buffer(_extra_files)

    @property
    def inlined_graph(self) -> Any:
        return self.graph  # calls to other scripted functions are always inlined

    @property
    def code(self) -> str:
        return self.graph_module().code

    def __repr__(self) -> str:
        return f"<ScriptFunction {self.__qualname__}>"


class ScriptModule(Module):
    """A module whose ``forward`` is scripted; parameters, buffers and submodules are the
    original module's (shared, not copied).

    >>> import kiln
    >>> class Gate(kiln.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = kiln.nn.Linear(2, 2)
    ...     def forward(self, x, h: Optional[kiln.Tensor] = None):
    ...         if h is None:
    ...             h = kiln.zeros_like(x)
    ...         return self.fc(x) + h
    >>> from typing import Optional
    >>> m = kiln.jit.script(Gate())
    >>> m(kiln.ones(1, 2)).shape
    (1, 2)
    """

    def __init__(self, module: Module) -> None:
        super().__init__()
        sets = object.__setattr__
        sets(self, "_original", module)
        for store in ("_parameters", "_buffers", "_modules", "_non_persistent_buffers_set"):
            sets(self, store, getattr(module, store))
        sets(self, "training", module.training)
        # Hooks registered before scripting are part of the script (TorchScript compiles
        # them in); registering one afterwards is refused, never silently dropped.
        sets(self, "_forward_hooks", dict(module._forward_hooks))
        sets(self, "_forward_pre_hooks", dict(module._forward_pre_hooks))
        sets(self, "_methods", {"forward": ScriptFunction(type(module).forward, self)})
        # The instance's forward is the ScriptFunction itself: callers that read forward's
        # signature (kiln.compile's dynamic=) see the module's parameters.
        sets(self, "forward", self._methods["forward"])

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._methods["forward"](*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        methods = object.__getattribute__(self, "_methods") if "_methods" in self.__dict__ \
            else {}
        if name in methods and name != "forward":
            return methods[name]
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(object.__getattribute__(self, "_original"), name)

    def __iter__(self) -> Any:  # containers (Sequential, ModuleList) iterate as before
        return iter(self._original)

    def __len__(self) -> int:
        return len(self._original)

    def __getitem__(self, index: Any) -> Any:
        return self._original[index]

    def register_forward_hook(self, hook: Callable) -> Any:
        raise ScriptError("register_forward_hook on a ScriptModule: hooks are compiled in "
                          "when scripting; register it on the module before "
                          "kiln.jit.script(module)")

    def register_forward_pre_hook(self, hook: Callable) -> Any:
        raise ScriptError("register_forward_pre_hook on a ScriptModule: hooks are compiled "
                          "in when scripting; register it on the module before "
                          "kiln.jit.script(module)")

    def _get_forward_hooks(self) -> list[Callable]:
        return list(self._forward_hooks.values())

    def _get_forward_pre_hooks(self) -> list[Callable]:
        return list(self._forward_pre_hooks.values())

    def train(self, mode: bool = True) -> ScriptModule:
        super().train(mode)
        self._original.train(mode)
        return self

    def define(self, source: str) -> None:
        r"""Add the methods ``def``-ined in ``source`` (TorchScript's ``define``). Their names
        resolve through the module's class's globals; the text is parsed and run by the
        script interpreter, never executed by Python.

        >>> import kiln
        >>> m = kiln.jit.script(kiln.nn.Linear(2, 2))
        >>> m.define("def twice(self, x):\n    return self.forward(x) * 2")
        >>> m.twice(kiln.ones(1, 2)).shape
        (1, 2)
        """
        if not isinstance(source, str):
            raise ArgumentError(f"define: source must be str, got {type(source).__name__}")
        import sys

        text = source.strip("\n")
        src = Source("<define>", text.splitlines(), 0, 0)
        module_globals = vars(sys.modules.get(type(self._original).__module__, sys))
        for parsed in parse_text(text, src, "define()"):
            self._methods[parsed.fn.name] = ScriptFunction(None, self, parsed, module_globals)

    _define = define

    def _register_attribute(self, name: str, type_: Any, value: Any) -> None:
        """Add a plain attribute (TorchScript's ``_register_attribute``)."""
        setattr(self._original, name, value)

    def _create_method_from_trace(self, name: str, fn: Callable, example_inputs: Any,
                                  *args: Any, **kwargs: Any) -> None:
        """Add method ``name``: ``fn`` traced on ``example_inputs`` (a tuple)."""
        from kiln.jit.program import trace

        self._methods[name] = trace(fn, example_inputs)

    def _create_method_from_trace_with_dict(self, name: str, fn: Callable,
                                            example_inputs: dict, *args: Any,
                                            **kwargs: Any) -> None:
        """Like :meth:`_create_method_from_trace`, the example inputs given by name."""
        from kiln.jit.program import trace

        params = list(inspect.signature(fn).parameters)
        missing = [p for p in params if p not in example_inputs]
        if missing or len(params) != len(example_inputs):
            raise ArgumentError(f"_create_method_from_trace_with_dict: example inputs "
                                f"{sorted(example_inputs)} do not name the parameters "
                                f"{params} of {name!r}")
        self._methods[name] = trace(fn, tuple(example_inputs[p] for p in params))

    def _method_names(self) -> list[str]:
        return list(self._methods)

    def _has_method(self, name: str) -> bool:
        return name in self._methods

    def _get_method(self, name: str) -> ScriptFunction:
        try:
            return self._methods[name]
        except KeyError:
            raise ArgumentError(f"ScriptModule has no method {name!r} (it has "
                                f"{self._method_names()})") from None

    @property
    def graph(self) -> Any:
        return self._methods["forward"].graph

    @property
    def inlined_graph(self) -> Any:
        return self.graph

    @property
    def code(self) -> str:
        return self._methods["forward"].code

    @property
    def code_with_constants(self) -> tuple[str, dict]:
        return self._methods["forward"].code_with_constants

    def dump_to_str(self, code: bool = True, attrs: bool = True, params: bool = True) -> str:
        return self._methods["forward"].dump_to_str(code, attrs, params)

    def dump(self, code: bool = True, attrs: bool = True, params: bool = True) -> None:
        print(self.dump_to_str(code, attrs, params))

    def save(self, path: Any, _extra_files: Any = None) -> None:
        """Save forward's program for every input signature it was called with (see
        docs/jit.md)."""
        self._methods["forward"].program().save(path, _extra_files)

    def save_to_buffer(self, _extra_files: Any = None) -> bytes:
        return self._methods["forward"].program().save_to_buffer(_extra_files)

    def __copy__(self) -> ScriptModule:
        return ScriptModule(self._original)  # shares the parameters

    def __deepcopy__(self, memo: dict) -> ScriptModule:
        return ScriptModule(copy.deepcopy(self._original, memo))

    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other

    def _get_name(self) -> str:
        return f"ScriptModule[{type(self._original).__name__}]"


def script(obj: Any) -> Any:
    """Compile a function or a ``kiln.nn.Module`` from its source (TorchScript's
    ``torch.jit.script``): control flow on tensors stays control flow in traced graphs.

    >>> import kiln
    >>> def clip_norm(x, max_norm: float):
    ...     n = (x * x).sum().sqrt()
    ...     if n > max_norm:
    ...         x = x * (max_norm / n)
    ...     return x
    >>> f = kiln.compile(kiln.jit.script(clip_norm))
    >>> f(kiln.tensor([3.0, 4.0]), 1.0).tolist()
    [0.6000000238418579, 0.800000011920929]
    """
    if isinstance(obj, (ScriptFunction, ScriptModule)):
        return obj
    if isinstance(obj, Module):
        return ScriptModule(obj)
    if isinstance(obj, types.MethodType):
        return ScriptFunction(obj.__func__, obj.__self__)
    if isinstance(obj, types.FunctionType):
        return ScriptFunction(obj)
    raise ArgumentError(f"kiln.jit.script: expected a function or a kiln.nn.Module, got "
                        f"{type(obj).__name__}")


class _Calls:
    """How scripted code calls things: user functions and modules are scripted too."""

    def call(self, fn: Any, args: list, kwargs: dict, src: Source, node: ast.AST) -> Any:
        mark = getattr(fn, "_kiln_jit", None)
        if mark == "unused":
            raise src.error(node, f"{getattr(fn, '__qualname__', fn)} is marked "
                            "@kiln.jit.unused and cannot be called from scripted code")
        if mark == "ignore":
            return fn(*args, **kwargs)
        if isinstance(fn, types.MethodType) and _user_code(fn.__func__) and \
                getattr(fn.__func__, "_kiln_jit", None) is None:
            return ScriptFunction(fn.__func__, fn.__self__)(*args, **kwargs)
        if isinstance(fn, types.FunctionType) and _user_code(fn):
            return ScriptFunction(fn)(*args, **kwargs)
        if isinstance(fn, Module) and not isinstance(fn, ScriptModule) and \
                _user_code(type(fn).forward):
            return ScriptModule(fn)(*args, **kwargs)
        return fn(*args, **kwargs)


_KILN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _user_code(fn: Any) -> bool:
    """Whether ``fn`` is the user's Python function (scripted when called), rather than
    Kiln's own code or a library's (called as it is: it is trace-safe or opaque)."""
    if not isinstance(fn, types.FunctionType):
        return False
    filename = os.path.abspath(fn.__code__.co_filename)
    if filename.startswith(_KILN_DIR + os.sep):
        return False
    mod = getattr(fn, "__module__", None) or ""
    return not (mod.startswith("numpy") or mod in ("builtins", "typing", "math"))


_CALLS = _Calls()
