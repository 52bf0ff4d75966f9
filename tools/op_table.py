"""Print the op table (Markdown) from the registry; README's table is this output.

Run ``python tools/op_table.py`` (or ``--check README.md`` to fail when the README is stale).
"""

from __future__ import annotations

import sys
from typing import Any

BEGIN = "<!-- op-table:begin -->"
END = "<!-- op-table:end -->"


def render() -> str:
    import kiln
    from kiln.core.prims.registry import REGISTRY

    _ = kiln
    rows = ["| op | kind | grad | C lowering | what it does |", "|---|---|---|---|---|"]
    for name in sorted(REGISTRY, key=lambda n: (REGISTRY[n].kind, n)):
        op = REGISTRY[name]
        grad = "yes" if op.vjp is not None else "-"
        # A pipe ends a table cell even inside backticks; GitHub renders `\|` as `|`.
        lowering = f"`{op.c_expr}`".replace("|", "\\|") if op.c_expr else \
            "- (refused)" if op.kind == "linalg" else "kernel"
        doc = op.doc.split("\n")[0].replace("|", "\\|")
        rows.append(f"| `{name}` | {op.kind} | {grad} | {lowering} | {doc} |")
    rows.extend(_composite_rows())
    return "\n".join(rows)


# torch's layer functions issue 12 added (prelu, transposed convolution, resizing, the 1-D
# and 3-D pooling family).
LAYER_FUNCTIONS = ("prelu", "conv_transpose1d", "conv_transpose2d", "interpolate", "upsample",
                   "upsample_nearest", "upsample_bilinear", "max_pool1d", "avg_pool1d",
                   "max_pool3d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_max_pool1d",
                   "softsign", "softshrink", "hardshrink", "hardswish", "celu", "selu", "glu",
                   "threshold")


# kiln.linalg composites that use no decomposition (matrix products only): C compiles them.
_LINALG_IN_C = {"kiln.linalg.multi_dot", "kiln.linalg.vecdot", "kiln.linalg.vander",
                "kiln.linalg.matrix_power", "kiln.matrix_power", "kiln.ormqr", "kiln.orgqr",
                "kiln.linalg.householder_product"}


def _composite_rows() -> list[str]:
    """torch-surface composites (kiln.core.mathops, kiln.linalg, the nn additions): plain
    Python over the primitives above, so their gradient and C code are the primitives'."""
    import kiln.nn.functional as F
    from kiln.core import elementwise, linalg, linalg_decomp, mathops, shapeops, windows

    entries = [(f"kiln.{n}", getattr(mathops, n)) for n in mathops.FUNCTIONS]
    entries += [(f"kiln.{n}", getattr(elementwise, n)) for n in elementwise.FUNCTIONS]
    entries += [(f"kiln.{n}", getattr(shapeops, n)) for n in shapeops.FUNCTIONS]
    # issue 12's sorting, searching, selection, histogram and masked ops
    from kiln.core import dataops, diagops, masked, scatterops, selectops, sortops

    for mod in (sortops, selectops, diagops, scatterops, dataops):
        entries += [(f"kiln.{n}", getattr(mod, n)) for n in mod.FUNCTIONS]
    entries.append(("Tensor.sum_to_size", diagops.sum_to_size))
    entries += [(f"kiln.masked.{n}", getattr(masked, n)) for n in masked.__all__]
    entries.append(("Tensor.repeat", mathops.repeat))
    entries.append(("Tensor.unfold", windows.unfold))
    entries.append(("kiln.norm", linalg.torch_norm))
    entries += [(f"kiln.linalg.{n}", getattr(linalg, n)) for n in linalg.__all__]
    entries += [(f"kiln.{n}", fn) for n, fn in linalg_decomp.TOP_LEVEL.items()]
    from kiln.core import copies, numerics

    entries += [(f"kiln.{n}", fn) for n, fn in copies.FUNCTIONS.items()]
    entries += [(f"kiln.{n}", getattr(numerics, n)) for n in numerics.FUNCTIONS]
    entries += [(f"kiln.fft.{n}", getattr(numerics, n)) for n in ("fftshift", "ifftshift")]
    from kiln.core import special

    entries += [(f"kiln.special.{n}", getattr(special, n)) for n in special.__all__]
    entries += [(f"kiln.{n}", fn) for n, fn in special.TOP_LEVEL.items()
                if n not in ("erfc", "lgamma", "digamma", "polygamma")]
    entries += [(f"F.{n}", getattr(F, n)) for n in ("unfold", "fold", "tanhshrink",
                                                   "max_unpool2d")]
    entries += [(f"F.{n}", getattr(F, n)) for n in LAYER_FUNCTIONS]
    from kiln import nn
    from kiln.nn.layers import (
        activations,
        conv_transpose,
        fold,
        padding,
        pooling_nd,
        rnn,
        transformer,
        unpool,
    )

    entries += [(f"nn.{n}", getattr(nn, n))
                for n in (*fold.__all__, *transformer.__all__, *unpool.__all__,
                          *padding.__all__, *activations.__all__)]
    # The layer modules of issue 12: every public class those modules define.
    for mod in (conv_transpose, pooling_nd, rnn):
        entries += [(f"nn.{n}", c) for n, c in vars(mod).items()
                    if isinstance(c, type) and c.__module__ == mod.__name__
                    and not n.startswith("_") and not n.endswith("Base")]
    # torch's losses, distances and remaining layers (issue 12, nnops): the kiln.* names,
    # F.NNOPS_FUNCTIONS and every module listed by the layer modules' __all__.
    from kiln.nn import aten_extra, distance, grid_sample, norm_extra, pool_backward
    from kiln.nn.layers import bags as bag_layers
    from kiln.nn.layers import conv3d as conv3d_layers
    from kiln.nn.layers import loss_extra
    from kiln.nn.layers import norm_extra as norm_layers

    entries += [("kiln.cdist", distance.cdist), ("kiln.dist", distance.dist),
                ("kiln.max_pool2d_with_indices_backward",
                 pool_backward.max_pool2d_with_indices_backward),
                ("kiln._native_batch_norm_legit", norm_extra.native_batch_norm_legit)]
    entries += [(f"kiln.{n}", getattr(norm_extra, n)) for n in norm_extra.ATEN]
    entries += [(f"kiln.{n}", getattr(grid_sample, n)) for n in grid_sample.ATEN]
    entries += [(f"kiln.{n}", getattr(aten_extra, n)) for n in aten_extra.ATEN]
    entries += [(f"F.{n}", getattr(F, n)) for n in F.NNOPS_FUNCTIONS]
    entries += [(f"nn.{n}", getattr(nn, n)) for n in (*loss_extra.__all__,
                                                      *norm_layers.__all__,
                                                      *conv3d_layers.__all__,
                                                      *bag_layers.__all__)]
    # Gradient clipping: Kiln ops under no_grad (it rescales .grad in place, so it runs in a
    # traced training step; it is not itself differentiated).
    from kiln.nn.utils import clip_grad

    no_grad = {f"nn.utils.{n}" for n in ("clip_grad_norm_", "clip_grad_value_",
                                         "get_total_norm")}
    entries += [(n, getattr(clip_grad, n.rpartition(".")[2])) for n in sorted(no_grad)]
    from kiln.signal import windows as signal_windows

    # windows take no tensor: NumPy computes them, a trace records them as constants
    constants = {f"kiln.signal.windows.{n}" for n in signal_windows.__all__} | \
        {f"kiln.{n}" for n in signal_windows.LEGACY}
    entries += [(n, getattr(signal_windows, n.rpartition(".")[2])) for n in sorted(constants)]
    # integer or count results: nothing to differentiate
    no_grad |= {f"kiln.{n}" for n in ("argsort", "searchsorted", "bucketize", "histc",
                                      "histogram", "histogramdd", "isin", "unique",
                                      "unique_consecutive", "nonzero", "argwhere", "bincount",
                                      "nonzero_static", "unravel_index",
                                      "masked.argmax", "masked.argmin")}
    rows = []
    # a name listed twice (two helpers' modules both list it) is one row: the first listing
    unique: dict[str, Any] = {}
    for name, fn in entries:
        unique.setdefault(name, fn)
    for name, fn in sorted(unique.items()):
        doc = (fn.__doc__ or "").strip().split("\n")[0].replace("|", "\\|")
        grad = "-" if name in no_grad or name in constants else "yes"
        # the decompositions' primitives have no C kernel (kind linalg): say so here too
        c = "- (refused)" if getattr(fn, "__module__", "") == linalg_decomp.__name__ and \
            name not in _LINALG_IN_C else "a constant" if name in constants else \
            "its primitives"
        rows.append(f"| `{name}` | composite | {grad} | {c} | {doc} |")
    return rows


def splice(readme: str, table: str) -> str:
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def main(argv: list[str]) -> int:
    table = render()
    if argv[:1] == ["--check"]:
        text = open(argv[1]).read()
        return 0 if splice(text, table) == text else 1
    if argv[:1] == ["--write"]:
        text = open(argv[1]).read()
        open(argv[1], "w").write(splice(text, table))
        return 0
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
