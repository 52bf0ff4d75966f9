"""``kiln.aot``: ahead-of-time autograd (Kiln's functorch.compile).

Capture the forward *and* the backward of a function ahead of time as graphs, look at
them, and hand each to the compiler of your choice; the result still composes with eager
autograd (``loss.backward()`` runs the compiled backward).

Stage: AOT autograd, above the backends. May import kiln.backends, kiln.tracing, kiln.graph,
kiln.nn, kiln.io, the tensor core (kiln.core, kiln.ops, kiln.autograd), kiln.symbolic,
kiln.base and kiln.errors.

>>> import kiln
>>> from kiln.aot import aot_function, nop
>>> f = aot_function(lambda x: x.cos().cos(), fw_compiler=nop)
>>> x = kiln.tensor([0.5, 1.0], requires_grad=True)
>>> f(x).sum().backward()
>>> x0 = kiln.tensor([0.5, 1.0], requires_grad=True)
>>> x0.cos().cos().sum().backward()
>>> bool((x.grad - x0.grad).abs().max().item() == 0.0)
True

See docs/aot.md for the joint graph, the partitioners and the saved-activation report.
"""

from __future__ import annotations

from kiln.base.lazy import lazy_attributes

# Everything loads on first use: a process that only runs stored entries imports
# kiln.aot.entry, never the tracer, the partitioners, the graph drawers (subprocess,
# shutil) or the reports.
_LAZY = {
    "aot_function": "api", "aot_module": "api", "AOTModule": "api",
    "AOTFunction": "runtime", "Compiler": "runtime", "default_partition": "partition",
    "draw_graph": "compilers", "graph_drawer": "compilers", "nop": "compilers",
    "print_compile": "compilers", "to_dot": "compilers",
    "AOTError": "mincut", "min_cut_rematerialization_partition": "mincut",
    "SavedActivationsReport": "report", "SavedTensor": "report",
    "saved_activations": "report", "tape_saved_activations": "report",
    "script_compile": "ts", "ts_compile": "ts",
}

__getattr__, __dir__ = lazy_attributes("kiln.aot", _LAZY, globals())

__all__ = [
    "aot_function", "aot_module", "AOTFunction", "AOTModule", "default_partition",
    "min_cut_rematerialization_partition", "nop", "print_compile", "draw_graph",
    "graph_drawer", "to_dot", "saved_activations", "tape_saved_activations",
    "SavedActivationsReport", "SavedTensor", "AOTError", "ts_compile", "script_compile",
]
