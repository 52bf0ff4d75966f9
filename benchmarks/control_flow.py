"""Control flow on the C backend: an Elman RNN over a run-time sequence length (a
``fori_loop``), one library for every length.

Run from the repository root: ``python -m benchmarks.control_flow [--no-torch] [--smoke]``.

Columns (median CPU microseconds per forward call, single-threaded, hidden size 64, batch 8):
the interpreter; the C backend with the control on the host (``kiln.backends.c.control``,
the fallback: one native call per iteration); the C backend with the loop lowered into the
generated C (``kiln.backends.c.control_lower``: one native call); torch eager (a Python
loop), when torch is installed. ``--smoke``: tiny sizes, one call per cell.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np

from benchmarks.overhead import median_cpu_us as _median

os.environ.setdefault("OMP_NUM_THREADS", "1")


def median_cpu_us(fn: Any, rounds: int) -> float:
    return _median(fn, rounds, 1)


def elman(xs, h0, w_ih, w_hh):  # noqa: ANN001, ANN201
    import kiln

    step = lambda i, h: (xs[i] @ w_ih + h @ w_hh).tanh()  # noqa: E731
    return kiln.fori_loop(0, xs.shape[0], step, h0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()

    import kiln
    from kiln.backends.c.backend import compile_c
    from kiln.backends.c.control import HostControlFunction
    from kiln.graph.interpreter import run

    hidden, batch = (8, 2) if args.smoke else (64, 8)
    lengths = (2, 4) if args.smoke else (16, 128)
    rounds = 1 if args.smoke else 9
    rng = np.random.default_rng(0)
    w_ih = kiln.tensor(rng.standard_normal((hidden, hidden)).astype(np.float32) * 0.2)
    w_hh = kiln.tensor(rng.standard_normal((hidden, hidden)).astype(np.float32) * 0.2)
    h0 = kiln.zeros(batch, hidden)
    gm = kiln.trace(elman, kiln.ones(2, batch, hidden), h0, w_ih, w_hh,
                    dynamic={"xs": {0: "T"}})
    lowered = compile_c(gm, None)
    host = HostControlFunction(gm, {})
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            torch = None
        else:
            torch.set_num_threads(1)
    print(f"{'T':>5} {'interpreter':>12} {'C, host loop':>13} {'C, C loop':>10} "
          f"{'torch eager':>12}   (us per call)")
    for steps in lengths:
        xs = kiln.tensor(rng.standard_normal((steps, batch, hidden)).astype(np.float32))
        inputs = [xs, h0, w_ih, w_hh]
        want = run(gm.graph, gm.constants, inputs)[0].numpy()
        np.testing.assert_allclose(lowered(*inputs)[0].numpy(), want, rtol=1e-4, atol=1e-5)
        cells = [median_cpu_us(lambda i=inputs: run(gm.graph, gm.constants, i), rounds),
                 median_cpu_us(lambda i=inputs: host(*i), rounds),
                 median_cpu_us(lambda i=inputs: lowered(*i), rounds)]
        text = "n/a"
        if torch is not None:
            t_in = [torch.from_numpy(t.numpy()) for t in inputs]

            def eager(t_in: list = t_in) -> Any:
                x, h, wi, wh = t_in
                for t in range(x.shape[0]):
                    h = torch.tanh(x[t] @ wi + h @ wh)
                return h

            text = f"{median_cpu_us(eager, rounds):12.1f}"
        print(f"{steps:>5} {cells[0]:12.1f} {cells[1]:13.1f} {cells[2]:10.1f} {text:>12}")


if __name__ == "__main__":
    main()
