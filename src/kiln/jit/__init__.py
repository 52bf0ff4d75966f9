"""``kiln.jit``: TorchScript's API over Kiln's pipeline (issue 11).

``kiln.jit.script(fn_or_module)`` compiles a typed Python subset from its source, keeping
control flow on tensors as ``cond`` / ``while_loop`` / ``fori_loop`` nodes in traced graphs
(see docs/jit.md for what is supported).

Stage: jit, above kiln.export and below kiln.cli.
"""

from kiln.errors import ScriptError
from kiln.jit.freeze import freeze
from kiln.jit.program import ScriptProgram, load, trace
from kiln.jit.script import ScriptFunction, ScriptModule, _overload, ignore, script, unused

__all__ = ["script", "ignore", "unused", "trace", "load", "freeze", "ScriptFunction",
           "ScriptModule", "ScriptProgram", "ScriptError", "_overload"]
