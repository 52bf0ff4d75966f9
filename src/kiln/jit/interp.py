"""Run a scripted function's AST: Python semantics on Python values, graph control flow on
tensors.

Nothing is compiled with ``compile``/``exec``: each node is evaluated here, names resolve
through the function's locals, then its closure, then its globals, then builtins (the
counterpart of TorchScript's resolution callback). Control flow whose condition is a Python
value (``if x is None``, ``for i in range(3)``) runs as Python; control flow on a tensor
becomes ``kiln.cond`` / ``kiln.while_loop`` / ``kiln.fori_loop`` (a loop over
``range(n)`` with a symbolic or tensor ``n``), which eagerly are Python control flow again
and inside ``kiln.trace`` / ``kiln.compile`` are kept in the graph.

Under a tensor condition only tensors can change: a Python number assigned there is made
a tensor (``count = count + 1`` in a tensor loop carries a tensor), anything else is a
:class:`ScriptError` pointing at the statement.
"""

from __future__ import annotations

import ast
import builtins
import operator
from typing import Any

from kiln.base.pytree import tree_flatten
from kiln.core import creation
from kiln.core.tensor import Tensor
from kiln.core.trace_state import current
from kiln.errors import KilnError, ScriptError
from kiln.jit.frontend import Parsed, assigned_names
from kiln.symbolic.sizes import SymInt
from kiln.tracing.control import cond, fori_loop, while_loop

_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
        ast.Pow: operator.pow, ast.MatMult: operator.matmul, ast.BitAnd: operator.and_,
        ast.BitOr: operator.or_, ast.BitXor: operator.xor, ast.LShift: operator.lshift,
        ast.RShift: operator.rshift}
_CMP = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
        ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_,
        ast.IsNot: operator.is_not, ast.In: lambda a, b: a in b,
        ast.NotIn: lambda a, b: a not in b}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}
_MISSING = object()


class _Return(Exception):  # noqa: N818  (control flow, not an error)
    def __init__(self, value: Any) -> None:
        self.value = value


class _Break(Exception):  # noqa: N818
    pass


class _Continue(Exception):  # noqa: N818
    pass


def _is_tracer(v: Any) -> bool:
    return isinstance(v, Tensor) and v._node is not None


def _tensor_cond(v: Any) -> bool:
    """Whether ``v`` as a condition must become graph control flow."""
    return _is_tracer(v)


def _truth(v: Any) -> bool:
    if isinstance(v, Tensor):
        return bool(v.item())
    return bool(v)


def _logical_not(v: Any) -> Any:
    if isinstance(v, Tensor):
        return v.logical_not() if v.dtype.name == "bool" else v == 0
    return not v


def _as_bool_tensor(v: Any) -> Any:
    if isinstance(v, Tensor):
        return v if v.dtype.name == "bool" else v != 0
    return creation.tensor(bool(v))


class Interpreter:
    """Evaluates one call of a parsed function."""

    def __init__(self, parsed: Parsed, globals_: dict, closure: dict, script: Any) -> None:
        self.parsed = parsed
        self.src = parsed.source
        self.globals = globals_
        self.closure = closure
        self.script = script  # kiln.jit.script: to compile user functions called from here

    # statements --------------------------------------------------------------------------
    def run(self, env: dict[str, Any]) -> Any:
        try:
            self.block(self.parsed.fn.body, env)
        except _Return as r:
            return r.value
        return None

    def block(self, stmts: list[ast.stmt], env: dict[str, Any]) -> None:
        for st in stmts:
            self.stmt(st, env)

    def stmt(self, st: ast.stmt, env: dict[str, Any]) -> None:
        try:
            getattr(self, "s_" + type(st).__name__)(st, env)
        except (_Return, _Break, _Continue, ScriptError):
            raise
        except KilnError as e:
            raise self.src.error(st, f"{type(e).__name__}: {e}") from e

    def s_Expr(self, st: ast.Expr, env: dict) -> None:  # noqa: N802
        self.expr(st.value, env)

    def s_Pass(self, st: ast.Pass, env: dict) -> None:  # noqa: N802
        pass

    def s_Break(self, st: ast.Break, env: dict) -> None:  # noqa: N802
        raise _Break

    def s_Continue(self, st: ast.Continue, env: dict) -> None:  # noqa: N802
        raise _Continue

    def s_Return(self, st: ast.Return, env: dict) -> None:  # noqa: N802
        raise _Return(None if st.value is None else self.expr(st.value, env))

    def s_Assign(self, st: ast.Assign, env: dict) -> None:  # noqa: N802
        value = self.expr(st.value, env)
        for t in st.targets:
            self.store(t, value, env)

    def s_AnnAssign(self, st: ast.AnnAssign, env: dict) -> None:  # noqa: N802
        if st.value is None:
            raise self.src.error(st, "a declaration without a value is not supported; "
                                 "assign a value")
        self.store(st.target, self.expr(st.value, env), env)

    def s_AugAssign(self, st: ast.AugAssign, env: dict) -> None:  # noqa: N802
        op = _BIN[type(st.op)]
        if isinstance(st.target, ast.Name):
            env[st.target.id] = op(self.load(st.target, env), self.expr(st.value, env))
        else:  # x[i] += v, self.t += v: read, compute, write back
            self.store(st.target, op(self.expr(st.target, env), self.expr(st.value, env)), env)

    def store(self, target: ast.expr, value: Any, env: dict) -> None:
        if isinstance(target, ast.Name):
            env[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            values = list(value)
            if len(values) != len(target.elts):
                raise self.src.error(target, f"cannot unpack {len(values)} values into "
                                     f"{len(target.elts)} names")
            for t, v in zip(target.elts, values, strict=True):
                self.store(t, v, env)
        elif isinstance(target, ast.Subscript):
            obj = self.expr(target.value, env)
            obj[self.expr(target.slice, env)] = value
        elif isinstance(target, ast.Attribute):
            setattr(self.expr(target.value, env), target.attr, value)
        else:
            raise self.src.error(target, "cannot assign to this expression")

    # if ----------------------------------------------------------------------------------
    def s_If(self, st: ast.If, env: dict) -> None:  # noqa: N802
        test = self.expr(st.test, env)
        if not _tensor_cond(test):
            self.block(st.body if _truth(test) else st.orelse, env)
            return
        from kiln.jit.frontend import _returns

        if _returns(st.body) and _returns(st.orelse):
            value = cond(_as_bool_tensor(test), lambda: self._branch_return(st.body, env),
                         lambda: self._branch_return(st.orelse, env), ())
            raise _Return(value)
        # What the cond returns: names assigned in both branches, or in one and defined
        # before; a name only one branch defines is local to it.
        in_body, in_else = set(assigned_names(st.body)), set(assigned_names(st.orelse))
        names = [n for n in assigned_names(st.body + st.orelse)
                 if n in env or (n in in_body and n in in_else)]
        outs = cond(_as_bool_tensor(test), lambda: self._branch(st.body, env, names, st),
                    lambda: self._branch(st.orelse, env, names, st), ())
        for n, v in zip(names, outs, strict=True):
            if v is not _MISSING:
                env[n] = v

    def _branch_return(self, stmts: list[ast.stmt], env: dict) -> Any:
        local = dict(env)
        try:
            self.block(stmts, local)
        except _Return as r:
            return r.value
        raise self.src.error(stmts[-1] if stmts else self.parsed.fn,
                             "a branch on a tensor condition must return a value")

    def _branch(self, stmts: list[ast.stmt], env: dict, names: list[str], st: ast.AST) -> list:
        local = dict(env)
        try:
            self.block(stmts, local)
        except (_Break, _Continue):
            raise self.src.error(st, "break/continue under a tensor condition is only "
                                 "supported inside a while loop") from None
        except _Return:
            raise self.src.error(st, "a return in one branch of a tensor condition needs "
                                 "a return in the other branch too") from None
        out = []
        for n in names:
            if n not in local:
                raise self.src.error(st, f"{n!r} is assigned in only one branch of a "
                                     "condition on a tensor and not defined before it")
            out.append(self._carry(local[n], n, st))
        return out

    def _carry(self, value: Any, name: str, st: ast.AST) -> Tensor:
        """A value that changes under a tensor condition: a tensor (numbers become one)."""
        if isinstance(value, Tensor):
            return value
        if isinstance(value, (bool, int, float)):
            return creation.tensor(value)
        raise self.src.error(st, f"{name!r} holds a {type(value).__name__} that changes under "
                             "a condition on a tensor; only tensors (and numbers, made "
                             "tensors) can")

    # loops -------------------------------------------------------------------------------
    def s_While(self, st: ast.While, env: dict) -> None:  # noqa: N802
        while True:
            test = self.expr(st.test, env)
            if _tensor_cond(test):
                return self._tensor_while(st, env)
            if not _truth(test):
                return None
            try:
                self.block(st.body, env)
            except _Break:
                return None
            except _Continue:
                continue

    def _loop_names(self, st: ast.AST, body: list[ast.stmt], env: dict) -> list[str]:
        return [n for n in assigned_names(body) if n in env]

    def _tensor_while(self, st: ast.While, env: dict) -> None:
        names = self._loop_names(st, st.body, env)
        carried = tuple(self._carry(env[n], n, st) for n in names)

        def bind(values: tuple) -> dict:
            local = dict(env)
            local.update(zip(names, values, strict=True))
            return local

        def cond_fn(values: tuple) -> Any:
            return _as_bool_tensor(self.expr(st.test, bind(values)))

        def body_fn(values: tuple) -> tuple:
            local = bind(values)
            try:
                self.block(st.body, local)
            except (_Return, _Break, _Continue):
                raise self.src.error(st, "return inside a loop on a tensor condition is not "
                                     "supported; set a variable and return after the "
                                     "loop") from None
            return tuple(self._carry(local[n], n, st) for n in names)

        out = while_loop(cond_fn, body_fn, carried)
        env.update(zip(names, out, strict=True))

    def s_For(self, st: ast.For, env: dict) -> None:  # noqa: N802
        it = st.iter
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range" \
                and self.lookup("range", env, it) is builtins.range and not it.keywords:
            bounds = [self.expr(a, env) for a in it.args]
            if any(isinstance(b, (SymInt, Tensor)) for b in bounds):
                return self._fori(st, bounds, env)
            iterable: Any = range(*bounds)
        else:
            iterable = self.expr(it, env)
            if isinstance(iterable, Tensor):
                n = iterable.shape[0]
                if isinstance(n, SymInt) or _is_tracer(iterable) and isinstance(n, SymInt):
                    return self._fori(st, [n], env, over=iterable)
                iterable = [iterable[k] for k in range(n)]
        for value in iterable:
            self.store(st.target, value, env)
            try:
                self.block(st.body, env)
            except _Break:
                break
            except _Continue:
                continue
        return None

    def _fori(self, st: ast.For, bounds: list, env: dict, over: Any = None) -> None:
        if len(bounds) not in (1, 2):
            raise self.src.error(st.iter, "range with a step is not supported when the bound "
                                 "is a run-time size or tensor")
        lower, upper = (0, bounds[0]) if len(bounds) == 1 else bounds
        if any(isinstance(s, (ast.Break, ast.Continue, ast.Return)) for b in st.body
               for s in ast.walk(b)):
            raise self.src.error(st, "break/continue/return in a for loop over a run-time "
                                 "range is not supported; write it as a while loop")
        names = [n for n in self._loop_names(st, st.body, env)
                 if not _target_names(st.target) & {n}]
        carried = tuple(self._carry(env[n], n, st) for n in names)

        def body_fn(i: Tensor, values: tuple) -> tuple:
            local = dict(env)
            local.update(zip(names, values, strict=True))
            self.store(st.target, over[i] if over is not None else i, local)
            self.block(st.body, local)
            return tuple(self._carry(local[n], n, st) for n in names)

        out = fori_loop(lower, upper, body_fn, carried)
        env.update(zip(names, out, strict=True))

    # expressions -------------------------------------------------------------------------
    def expr(self, e: ast.expr, env: dict) -> Any:
        try:
            return getattr(self, "e_" + type(e).__name__)(e, env)
        except (_Return, _Break, _Continue, ScriptError):
            raise
        except KilnError as err:
            raise self.src.error(e, f"{type(err).__name__}: {err}") from err

    def lookup(self, name: str, env: dict, node: ast.AST) -> Any:
        for scope in (env, self.closure, self.globals):
            if name in scope:
                return scope[name]
        if hasattr(builtins, name):
            return getattr(builtins, name)
        raise self.src.error(node, f"undefined name {name!r}")

    def load(self, e: ast.Name, env: dict) -> Any:
        return self.lookup(e.id, env, e)

    def e_Name(self, e: ast.Name, env: dict) -> Any:  # noqa: N802
        return self.load(e, env)

    def e_Constant(self, e: ast.Constant, env: dict) -> Any:  # noqa: N802
        return e.value

    def e_Attribute(self, e: ast.Attribute, env: dict) -> Any:  # noqa: N802
        obj = self.expr(e.value, env)
        try:
            return getattr(obj, e.attr)
        except AttributeError:
            raise self.src.error(e, f"{type(obj).__name__} has no attribute {e.attr!r}") \
                from None

    def e_Tuple(self, e: ast.Tuple, env: dict) -> Any:  # noqa: N802
        return tuple(self.expr(x, env) for x in e.elts)

    def e_List(self, e: ast.List, env: dict) -> Any:  # noqa: N802
        return [self.expr(x, env) for x in e.elts]

    def e_Dict(self, e: ast.Dict, env: dict) -> Any:  # noqa: N802
        if any(k is None for k in e.keys):
            raise self.src.error(e, "**-unpacking in a dict display is not supported")
        return {self.expr(k, env): self.expr(v, env)  # type: ignore[arg-type]
                for k, v in zip(e.keys, e.values, strict=True)}

    def e_Slice(self, e: ast.Slice, env: dict) -> Any:  # noqa: N802
        part = [None if x is None else self.expr(x, env) for x in (e.lower, e.upper, e.step)]
        return slice(*part)

    def e_Subscript(self, e: ast.Subscript, env: dict) -> Any:  # noqa: N802
        return self.expr(e.value, env)[self.expr(e.slice, env)]

    def e_BinOp(self, e: ast.BinOp, env: dict) -> Any:  # noqa: N802
        return _BIN[type(e.op)](self.expr(e.left, env), self.expr(e.right, env))

    def e_UnaryOp(self, e: ast.UnaryOp, env: dict) -> Any:  # noqa: N802
        v = self.expr(e.operand, env)
        if isinstance(e.op, ast.Not):
            return _logical_not(v)
        return _UNARY[type(e.op)](v)

    def e_BoolOp(self, e: ast.BoolOp, env: dict) -> Any:  # noqa: N802
        is_and = isinstance(e.op, ast.And)
        result = self.expr(e.values[0], env)
        for sub in e.values[1:]:
            if not isinstance(result, Tensor) or not _is_tracer(result):
                # Python semantics (short circuit) while the value is known
                if _truth(result) != is_and:
                    return result
                result = self.expr(sub, env)
                continue
            other = _as_bool_tensor(self.expr(sub, env))
            result = _as_bool_tensor(result)
            result = result.logical_and(other) if is_and else result.logical_or(other)
        return result

    def e_Compare(self, e: ast.Compare, env: dict) -> Any:  # noqa: N802
        left = self.expr(e.left, env)
        result: Any = True
        for op, right_e in zip(e.ops, e.comparators, strict=True):
            right = self.expr(right_e, env)
            r = _CMP[type(op)](left, right)
            if result is True:
                result = r
            else:
                result = _as_bool_tensor(result).logical_and(_as_bool_tensor(r)) \
                    if isinstance(r, Tensor) or isinstance(result, Tensor) else (result and r)
            left = right
        return result

    def e_IfExp(self, e: ast.IfExp, env: dict) -> Any:  # noqa: N802
        test = self.expr(e.test, env)
        if not _tensor_cond(test):
            return self.expr(e.body if _truth(test) else e.orelse, env)
        return cond(_as_bool_tensor(test), lambda: self.expr(e.body, env),
                    lambda: self.expr(e.orelse, env), ())

    def e_Call(self, e: ast.Call, env: dict) -> Any:  # noqa: N802
        fn = self.expr(e.func, env)
        args = [self.expr(a, env) for a in e.args]
        kwargs = {}
        for k in e.keywords:
            if k.arg is None:
                raise self.src.error(k, "**kwargs in a call is not supported")
            kwargs[k.arg] = self.expr(k.value, env)
        return self.script.call(fn, args, kwargs, self.src, e)


def closure_of(fn: Any) -> dict[str, Any]:
    """The values of ``fn``'s free variables (its closure), by name."""
    closure = {}
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=True):
        try:
            closure[name] = cell.cell_contents
        except ValueError:  # an empty cell: the name is not bound yet
            pass
    return closure


def _target_names(t: ast.expr) -> set[str]:
    if isinstance(t, ast.Name):
        return {t.id}
    if isinstance(t, (ast.Tuple, ast.List)):
        return set().union(*(_target_names(x) for x in t.elts))
    return set()


def tracing() -> bool:
    return current() is not None


def flat_tensors(value: Any) -> list[Tensor]:
    return [v for v in tree_flatten(value)[0] if isinstance(v, Tensor)]
