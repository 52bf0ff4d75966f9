"""Conv and pool kernels: calls into ``runtime/kiln_conv.h`` (see :mod:`.conv_kernels`),
through the prebuilt wrappers of :mod:`.convrt`.

The operands are realized contiguous buffers. Pointwise consumers of the result's shape
(bias, residual add, activation, batch-norm in inference) join the kernel as an epilogue
loop run right after the call, like a matmul's. Sizes are passed as runtime ``int64_t``, so
symbolic batch sizes need nothing special. The workspace pointer is NULL: the kernels
allocate what they need.
"""

from __future__ import annotations

from typing import Any

from kiln.backends.c import conv_kernels as ck
from kiln.backends.c.emit import Names
from kiln.backends.c.ix import IX, flat_index, lift
from kiln.errors import BackendError

_MAX = ("kernel", "stride", "padding", "dilation", "ceil_mode")


def conv_kernel(sched: Any, kid: int, node: Any, buf: Any) -> Any:
    from kiln.backends.c.schedule import Kernel

    if not buf.dtype.is_floating:
        raise BackendError(f"c backend: {node.target} (node {node.name}) needs a floating "
                           f"dtype, got {buf.dtype}")
    kind = "conv" if node.target.startswith("conv") else "pool"
    k = Kernel(kid, kind, buf.shape, (), sched._vars(buf.shape))
    operands = []
    for arg in node.args:
        operands.append(sched.lw.realized[arg])
    k.extern = {"node": node, "operands": operands, "out": buf}
    k.loads |= {b.id for b in operands}
    off = flat_index(k.vars, k.shape)
    k.local[buf.id] = (off, sched.b.raw_load(buf.id, off, buf.dtype))
    return k


def _shape(node: Any) -> tuple[IX, ...]:
    return tuple(lift(s) for s in node.meta.shape)


def call_text(node: Any, ptrs: list[str], out: str, names: Names) -> str:
    """The C call of ``node``'s kernel given its operand pointers and output pointer."""
    from kiln.backends.c.convrt import wrapper_name

    op = node.target
    attrs = node.kwargs
    fn = wrapper_name(op, node.meta.dtype.name)
    c = names.ix
    a_shape, b_shape = _shape(node.args[0]), _shape(node.args[1]) if len(node.args) > 1 \
        else None
    if op.startswith("conv"):
        geom = ck.conv_geometry(op, a_shape, b_shape, stride=attrs["stride"],
                                padding=attrs["padding"], dilation=attrs["dilation"],
                                groups=attrs["groups"], input_hw=attrs.get("input_hw"),
                                kernel_hw=attrs.get("kernel_hw"))
        sizes = ", ".join(c(lift(g)) for g in geom)
        if op == "conv2d":
            return f"{fn}({ptrs[0]}, {ptrs[1]}, NULL, NULL, {out}, {sizes}, 0, NULL)"
        return f"{fn}({ptrs[0]}, {ptrs[1]}, {out}, {sizes}, NULL)"
    out_shape = _shape(node)
    if op in ("max_pool2d", "avg_pool2d"):
        x_shape = a_shape
    elif op == "max_pool2d_backward":
        x_shape = b_shape
    else:
        x_shape = out_shape
    hw = out_shape[2:] if op in ("max_pool2d", "avg_pool2d") else a_shape[2:]
    sizes = ck.pool_sizes(x_shape, hw, kernel=attrs["kernel"], stride=attrs["stride"],
                          padding=attrs["padding"])
    size_text = ", ".join(c(lift(s)) for s in sizes)
    if op.startswith("max"):
        dil = ", ".join(str(d) for d in attrs["dilation"])
        return f"{fn}({', '.join(ptrs)}, {out}, {size_text}, {dil})"
    flags = f"{int(attrs['count_include_pad'])}, {attrs['divisor_override'] or 0}"
    return f"{fn}({', '.join(ptrs)}, {out}, {size_text}, {flags})"


def emit_conv(gen: Any, k: Any) -> str:
    from kiln.backends.c.codegen import KernelCode
    from kiln.backends.c.kernels import _stores, pointwise_nest

    kc = KernelCode(gen, k)
    ex = k.extern
    node = ex["node"]
    out = ex["out"]
    for b in ex["operands"]:
        kc.reads.add(b.id)
    kc.writes.add(out.id)
    checks = [e for e, _ in k.checks.values()]
    bit = len(checks)
    gen.check_messages[k.id] = [m for _, m in k.checks.values()] + [
        f"{node.target} (node {node.name}): the native kernel rejected its sizes or ran out "
        "of memory"]
    names = Names()
    gen.rt_funcs.add((node.target, node.meta.dtype.name))
    call = call_text(node, [f"(void *)b{b.id}" for b in ex["operands"]], f"b{out.id}", names)
    lines = [f"    if ({call} != 0) return (int64_t)1 << {bit};"]
    stores = _stores(gen, k, k.full)
    if stores or checks:
        lines += pointwise_nest(kc, stores, checks, list(range(len(k.shape))))
    return kc.function(lines, gen.comment(k))
