"""From a Python function to the checked, restructured AST that :mod:`kiln.jit.interp` runs.

The source is read with :func:`inspect.getsource` and parsed with :mod:`ast`; nothing is
compiled or executed from it. Three things happen here:

1. **checking**: every statement and expression must belong to the supported subset
   (:data:`SUPPORTED`); anything else is a :class:`ScriptError` pointing at it with a caret;
2. **early returns** become branches: in a block, an ``if`` one of whose branches ends in
   ``return`` takes the statements after it into its other branch, so every ``return`` ends
   the function (what a ``cond`` on a tensor needs: each branch returns a value);
3. **break / continue** in a ``while`` become flags (``__break``, ``__continue``): the
   statements after a conditional break run under ``if not (__break or __continue)``, and
   the loop test becomes ``not __break and (test)``, so a loop on a tensor condition can
   stop early as a ``kiln.while_loop``.
"""

from __future__ import annotations

import ast
import copy
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from kiln.errors import ScriptError

SUPPORTED = (
    "statements: assignments (also to tuples and subscripts), augmented assignments, "
    "if/elif/else, while, for over range(...) or a list/tuple/ModuleList, break, continue, "
    "return, pass, expression statements; expressions: names, attributes, calls "
    "(positional and keyword arguments), arithmetic, comparisons, and/or/not, subscripts "
    "and slices, tuple/list/dict displays, conditional expressions, constants"
)

_STMTS = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.If, ast.While, ast.For, ast.Return,
          ast.Expr, ast.Pass, ast.Break, ast.Continue)
_EXPRS = (ast.Constant, ast.Name, ast.Attribute, ast.Call, ast.BinOp, ast.UnaryOp,
          ast.BoolOp, ast.Compare, ast.Subscript, ast.Slice, ast.Tuple, ast.List, ast.Dict,
          ast.IfExp, ast.keyword, ast.expr_context, ast.operator, ast.unaryop, ast.boolop,
          ast.cmpop)
_HINTS = {
    ast.ListComp: "write the loop out (for ... in ...: xs.append(...)) or use a kiln op",
    ast.GeneratorExp: "write the loop out or use a kiln op",
    ast.Lambda: "define a function with def at module level",
    ast.Try: "exceptions are not compiled; check values with kiln ops instead",
    ast.With: "call kiln.no_grad() outside the scripted function",
    ast.Raise: "mark the function @kiln.jit.ignore to run it in Python",
    ast.Assert: "mark the function @kiln.jit.ignore to run it in Python",
    ast.Starred: "pass arguments one by one",
    ast.FunctionDef: "define helper functions at module level; they are scripted when called",
    ast.Global: "pass the value as an argument", ast.Nonlocal: "pass the value as an argument",
}


@dataclass
class Source:
    """Where a scripted function comes from, for error messages."""

    filename: str
    lines: list[str]  # the dedented source lines
    line_offset: int  # file line of lines[0], minus 1
    col_offset: int  # columns removed by dedenting

    def error(self, node: ast.AST, message: str) -> ScriptError:
        lineno = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0)
        end = getattr(node, "end_col_offset", None)
        line = self.lines[lineno - 1] if 0 < lineno <= len(self.lines) else ""
        if getattr(node, "end_lineno", lineno) != lineno or end is None:
            end = len(line.rstrip())
        width = max(1, end - col)
        pad = " " * self.col_offset
        where = f"{self.filename}:{lineno + self.line_offset}:{col + self.col_offset + 1}"
        return ScriptError(f"{message}\n  --> {where}\n   | {pad}{line.rstrip()}\n   | "
                           f"{pad}{' ' * col}{'^' * width}")


@dataclass
class Parsed:
    fn: ast.FunctionDef
    source: Source


def parse(fn: Callable) -> Parsed:
    """Parse, check and restructure ``fn``'s source."""
    code = getattr(fn, "__code__", None)
    if code is None:
        raise ScriptError(f"kiln.jit.script: {fn!r} is not a Python function")
    try:
        lines, start = inspect.getsourcelines(fn)
    except (OSError, TypeError) as e:
        raise ScriptError(f"kiln.jit.script: the source of {fn.__qualname__} is not "
                          f"available ({e}); script functions defined in a file") from None
    raw = "".join(lines)
    text = textwrap.dedent(raw)
    indent = len(raw.splitlines()[0]) - len(text.splitlines()[0])
    source = Source(code.co_filename, text.splitlines(), start - 1, indent)
    return parse_text(text, source, fn.__qualname__)[0]


def parse_text(text: str, source: Source, what: str) -> list[Parsed]:
    """Parse, check and restructure every top-level ``def`` of ``text``."""
    try:
        tree = ast.parse(text)
    except SyntaxError as e:  # a decorator line cut mid-expression, for instance
        raise ScriptError(f"kiln.jit.script: cannot parse {what}: {e}") from None
    if not tree.body:
        raise ScriptError(f"kiln.jit.script: {what} holds no function")
    out = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            raise source.error(node, "kiln.jit.script compiles functions defined with def "
                               "(not lambdas, classes or async functions)")
        out.append(Parsed(_prepare(node, source), source))
    return out


def _prepare(node: ast.FunctionDef, source: Source) -> ast.FunctionDef:
    _check_signature(node, source)
    for stmt in node.body:
        _check(stmt, source)
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]  # the docstring
    node = copy.copy(node)
    node.body = _restructure(list(body) or [ast.Pass()], source)
    return node


def signature_of(fn: ast.FunctionDef, source: Source) -> inspect.Signature:
    """The signature a ``def`` declares; defaults must be literals (read with
    ``ast.literal_eval``, which evaluates nothing else)."""
    args = fn.args.args
    defaults = [None] * (len(args) - len(fn.args.defaults)) + list(fn.args.defaults)
    params = []
    for a, d in zip(args, defaults, strict=True):
        if d is None:
            params.append(inspect.Parameter(a.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD))
            continue
        try:
            value = ast.literal_eval(d)
        except ValueError:
            raise source.error(d, "a default value must be a literal (a number, string, "
                               "bool, None or a tuple of them)") from None
        params.append(inspect.Parameter(a.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                        default=value))
    return inspect.Signature(params)


def _check_signature(fn: ast.FunctionDef, source: Source) -> None:
    a = fn.args
    if a.vararg or a.kwarg:
        raise source.error(a.vararg or a.kwarg, "*args and **kwargs are not supported: "
                           "name every parameter")
    if a.posonlyargs or a.kwonlyargs:
        raise source.error(fn, "positional-only and keyword-only parameters are not "
                           "supported: use plain parameters")


def _check(node: ast.AST, source: Source) -> None:
    for sub in ast.walk(node):
        if isinstance(sub, (ast.stmt,)) and not isinstance(sub, _STMTS):
            hint = _HINTS.get(type(sub), "")
            raise source.error(sub, f"`{type(sub).__name__}` statements are not supported by "
                               f"kiln.jit.script{'; ' + hint if hint else ''}. Supported: "
                               f"{SUPPORTED}")
        if isinstance(sub, ast.expr) and not isinstance(sub, _EXPRS):
            hint = _HINTS.get(type(sub), "")
            raise source.error(sub, f"`{type(sub).__name__}` expressions are not supported by "
                               f"kiln.jit.script{'; ' + hint if hint else ''}. Supported: "
                               f"{SUPPORTED}")
        if isinstance(sub, ast.For) and sub.orelse or isinstance(sub, ast.While) and sub.orelse:
            raise source.error(sub, "loops with an else clause are not supported; use a flag")
        if isinstance(sub, ast.Constant) and not isinstance(
                sub.value, (bool, int, float, str, type(None), type(...))):
            raise source.error(sub, f"constants of type {type(sub.value).__name__} are not "
                               "supported (bool, int, float, str and None are)")


# ---------------------------------------------------------------------------------------
# restructuring


def _returns(stmts: list[ast.stmt]) -> bool:
    """Whether the block always ends in a return."""
    if not stmts:
        return False
    last = stmts[-1]
    if isinstance(last, ast.Return):
        return True
    return isinstance(last, ast.If) and _returns(last.body) and _returns(last.orelse)


def _has_return(stmts: list[ast.stmt]) -> bool:
    return any(isinstance(s, ast.Return) for st in stmts for s in ast.walk(st))


def _restructure(stmts: list[ast.stmt], source: Source) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    for k, st in enumerate(stmts):
        if isinstance(st, ast.If):
            st = copy.copy(st)
            st.body = _restructure(st.body, source)
            st.orelse = _restructure(st.orelse, source)
            rest = stmts[k + 1:]
            if rest and (_has_return(st.body) or _has_return(st.orelse)):
                # An early return: the statements after the if belong to the branch that
                # does not return (both, if neither branch always returns).
                if _returns(st.body):
                    st.orelse = _restructure(st.orelse + rest, source)
                elif _returns(st.orelse):
                    st.body = _restructure(st.body + rest, source)
                else:
                    st.body = _restructure(st.body + rest, source)
                    st.orelse = _restructure(st.orelse + rest, source)
                out.append(st)
                return out
            out.append(st)
        elif isinstance(st, ast.While):
            out.extend(_rewrite_while(st, source))
        elif isinstance(st, ast.For):
            st = copy.copy(st)
            st.body = _restructure(st.body, source)
            out.append(st)
        elif isinstance(st, ast.Return):
            out.append(st)
            return out  # anything after a return never runs
        else:
            out.append(st)
    return out


def _mentions(stmts: list[ast.stmt], kinds: tuple) -> bool:
    """Whether ``stmts`` hold a break/continue of *this* loop (not of a nested loop)."""
    for st in stmts:
        if isinstance(st, kinds):
            return True
        if isinstance(st, ast.If) and (_mentions(st.body, kinds) or _mentions(st.orelse, kinds)):
            return True
    return False


_BRK, _CONT = "__break", "__continue"


def _name(id_: str, ctx: ast.expr_context, like: ast.AST) -> ast.Name:
    return ast.copy_location(ast.Name(id=id_, ctx=ctx), like)


def _assign(id_: str, value: bool, like: ast.AST) -> ast.Assign:
    node = ast.Assign(targets=[_name(id_, ast.Store(), like)],
                      value=ast.copy_location(ast.Constant(value), like))
    return ast.fix_missing_locations(ast.copy_location(node, like))


def _flags_body(stmts: list[ast.stmt], has_cont: bool) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    for k, st in enumerate(stmts):
        if isinstance(st, ast.Break):
            out.append(_assign(_BRK, True, st))
            return out
        if isinstance(st, ast.Continue):
            out.append(_assign(_CONT, True, st))
            return out
        if isinstance(st, ast.If) and _mentions([st], (ast.Break, ast.Continue)):
            st = copy.copy(st)
            st.body = _flags_body(st.body, has_cont)
            st.orelse = _flags_body(st.orelse, has_cont)
            out.append(st)
            rest = _flags_body(stmts[k + 1:], has_cont)
            if rest:
                flag: ast.expr = _name(_BRK, ast.Load(), st)
                if has_cont:
                    flag = ast.BoolOp(op=ast.Or(), values=[flag, _name(_CONT, ast.Load(), st)])
                test = ast.UnaryOp(op=ast.Not(), operand=flag)
                guard = ast.If(test=test, body=rest, orelse=[])
                out.append(ast.fix_missing_locations(ast.copy_location(guard, st)))
            return out
        out.append(st)
    return out


def _rewrite_while(st: ast.While, source: Source) -> list[ast.stmt]:
    st = copy.copy(st)
    body = _restructure(st.body, source)
    if not _mentions(body, (ast.Break, ast.Continue)):
        st.body = body
        return [st]
    has_cont = _mentions(body, (ast.Continue,))
    new_body = ([_assign(_CONT, False, st)] if has_cont else []) + _flags_body(body, has_cont)
    test = ast.BoolOp(op=ast.And(), values=[
        ast.UnaryOp(op=ast.Not(), operand=_name(_BRK, ast.Load(), st)), st.test])
    st.test = ast.fix_missing_locations(ast.copy_location(test, st.test))
    st.body = new_body
    init = [_assign(_BRK, False, st)] + ([_assign(_CONT, False, st)] if has_cont else [])
    return [*init, st]


def assigned_names(stmts: list[ast.stmt]) -> list[str]:
    """Names a block assigns (in first-assignment order), nested blocks included."""
    out: dict[str, None] = {}

    def targets(t: ast.AST) -> None:
        if isinstance(t, ast.Name):
            out.setdefault(t.id, None)
        elif isinstance(t, (ast.Tuple, ast.List)):
            for e in t.elts:
                targets(e)

    for st in stmts:
        for sub in ast.walk(st):
            if isinstance(sub, ast.Assign):
                for t in sub.targets:
                    targets(t)
            elif isinstance(sub, (ast.AugAssign, ast.AnnAssign)):
                targets(sub.target)
            elif isinstance(sub, ast.For):
                targets(sub.target)
    return list(out)
