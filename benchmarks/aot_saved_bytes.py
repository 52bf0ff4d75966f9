"""Bytes kept for backward: Kiln's eager tape, AOT partitions, and PyTorch eager.

Run from the repository root: ``python -m benchmarks.aot_saved_bytes [--no-torch] [--smoke]``.

For each model the forward is differentiated with respect to its parameters and input
(``model(x)``, output gradient from outside), and we count what stays alive for the
backward, in float32:

- ``kiln eager``: :func:`kiln.aot.tape_saved_activations` — the tensors referenced by tape
  nodes that their vjp rule reads, deduplicated by storage (a view counts once, at its
  base's size); parameters and the input count when a vjp reads them;
- ``default`` / ``min-cut``: :func:`kiln.aot.saved_activations` — the values the compiled
  forward hands to the compiled backward (every saved graph value at full size: a
  transposed weight is a value of its own, as a backend would materialize it);
- ``torch eager``: every tensor the autograd graph packs, seen through
  ``torch.autograd.graph.saved_tensors_hooks``, deduplicated by storage, on the same model
  with the same weights (``benchmarks/torch_models.py``).

Each cell is "total MiB (activations MiB)": activations exclude parameters and the input.
Counting is exact (no timing), so one run is enough; nothing here is timed.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from typing import Any

import kiln
from kiln.aot import (
    aot_function,
    default_partition,
    min_cut_rematerialization_partition,
    nop,
    saved_activations,
    tape_saved_activations,
)
from kiln.models import MLP, TransformerBlock

MiB = 1024 * 1024


def _cell(total: int, activations: int) -> str:
    return f"{total / MiB:7.2f} ({activations / MiB:6.2f})"


def kiln_rows(model: Any, x: kiln.Tensor) -> dict[str, tuple[int, int]]:
    def forward(inp: kiln.Tensor) -> kiln.Tensor:
        return model(inp)

    x = x.detach().requires_grad_(True)
    out: dict[str, tuple[int, int]] = {}
    tape = tape_saved_activations(forward, x)
    out["kiln eager"] = (tape.total_bytes, tape.activation_bytes)
    for name, part in (("default", default_partition),
                       ("min-cut", min_cut_rematerialization_partition),
                       ("min-cut b=0.5", functools.partial(
                           min_cut_rematerialization_partition, memory_budget=0.5))):
        fn = kiln.aot.aot_module(model, nop, partition_fn=part) if hasattr(model, "forward") \
            else aot_function(model, nop, partition_fn=part)
        report = saved_activations(fn, x)
        out[name] = (report.total_bytes, report.activation_bytes)
    return out


def torch_saved(torch_model: Any, x_np: Any) -> tuple[int, int]:
    import torch

    x = torch.from_numpy(x_np.copy()).requires_grad_(True)
    inputs = {p.untyped_storage().data_ptr() for p in torch_model.parameters()}
    inputs.add(x.untyped_storage().data_ptr())
    seen: dict[int, int] = {}

    def pack(t: Any) -> Any:
        storage = t.untyped_storage()
        seen.setdefault(storage.data_ptr(), storage.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        torch_model(x)
    total = sum(seen.values())
    activations = sum(n for ptr, n in seen.items() if ptr not in inputs)
    return total, activations


def workloads(smoke: bool = False
              ) -> list[tuple[str, Callable[[], Any], tuple, Callable[[Any], Any]]]:
    """(label, Kiln model maker, input shape, torch twin maker given the Kiln model).

    The labels are the README table's; ``smoke`` shrinks every model (a wiring check)."""
    from benchmarks import torch_models

    sizes, batch = ((8, 16, 16, 4), 4) if smoke else ((784, 1024, 1024, 10), 128)
    d, heads, ff, b, seq = (16, 2, 32, 2, 4) if smoke else (256, 4, 1024, 8, 128)
    mlps = [
        (f"MLP {'-'.join(map(str, sizes))} {name}, batch {batch}",
         functools.partial(MLP, sizes, act), (batch, sizes[0]),
         # The torch twin keeps its Linear layers in `.layers`, as the Kiln MLP does.
         lambda m, act=act: torch_models.load_from_kiln(torch_models.mlp(sizes, act), m))
        for act, name in (("relu", "ReLU"), ("gelu", "GELU"))
    ]
    return mlps + [
        (f"TransformerBlock d={d}, {heads} heads, MLP {ff}, batch {b} \u00d7 seq {seq}",
         lambda: TransformerBlock(d_model=d, nhead=heads, dim_feedforward=ff), (b, seq, d),
         lambda m: torch_models.load_from_kiln(torch_models.transformer_block(d, heads, ff),
                                               m)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny models: checks that the script runs (used by the tests)")
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401

        have_torch = not args.no_torch
    except ImportError:
        have_torch = False
    cols = ["kiln eager", "torch eager", "default", "min-cut", "min-cut b=0.5"]
    rows = []
    for label, make, shape, make_torch in workloads(args.smoke):
        kiln.manual_seed(0)
        model = make()
        x = kiln.randn(*shape)
        cells = kiln_rows(model, x)
        if have_torch:
            cells["torch eager"] = torch_saved(make_torch(model), x.numpy())
        rows.append((label, cells))
    print("Saved for backward, MiB total (activations only), float32")
    width = max(len(label) for label, _ in rows)
    print(f"| {'model':<{width}} | " + " | ".join(f"{c:>16}" for c in cols)
          + " | min-cut / default |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-" * 18 for _ in cols) + "|-------------------|")
    for label, cells in rows:
        text = [_cell(*cells[c]) if c in cells else "n/a" for c in cols]
        ratio = cells["min-cut"][0] / cells["default"][0]
        print(f"| {label:<{width}} | " + " | ".join(f"{t:>16}" for t in text)
              + f" | {ratio:17.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
