"""The layers issue 12 added, Kiln's C backend vs torch eager, inference, median ms.

Rows: an LSTM and a GRU (2 layers, bidirectional: the unrolled time loop as one C program), a
ConvTranspose2d decoder step and a bilinear upsample; each from the same weights (torch's
state dict loaded into Kiln), with the outputs checked against torch before timing. Kiln and
torch run in alternating rounds so both see the same machine noise.

Run: python -m benchmarks.layers [--threads N] [--rounds R] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def _cases(smoke: bool) -> list:
    if smoke:
        return [("LSTM 2x bidir 8->16, seq 4, batch 2", "LSTM", (8, 16), (4, 2, 8)),
                ("GRU 2x bidir 8->16, seq 4, batch 2", "GRU", (8, 16), (4, 2, 8)),
                ("ConvTranspose2d 8->4 k4/2 @8", "ConvTranspose2d", (8, 4, 4), (1, 8, 8, 8)),
                ("Upsample bilinear x2 @8", "Upsample", (), (1, 4, 8, 8))]
    return [("LSTM 2x bidir 128->256, seq 32, batch 16", "LSTM", (128, 256), (32, 16, 128)),
            ("GRU 2x bidir 128->256, seq 32, batch 16", "GRU", (128, 256), (32, 16, 128)),
            ("ConvTranspose2d 256->128 k4/2 @28", "ConvTranspose2d", (256, 128, 4),
             (8, 256, 28, 28)),
            ("Upsample bilinear x2 @56", "Upsample", (), (8, 64, 56, 56))]


def _modules(kind: str, args: tuple, torch):
    import kiln

    if kind in ("LSTM", "GRU"):
        kw = {"num_layers": 2, "bidirectional": True}
    elif kind == "ConvTranspose2d":
        kw = {"stride": 2, "padding": 1}
    else:
        kw = {"scale_factor": 2, "mode": "bilinear"}
    km = getattr(kiln.nn, kind)(*args, **kw)
    tm = getattr(torch.nn, kind)(*args, **kw) if torch is not None else None
    if tm is not None:
        km.load_state_dict(tm.state_dict())
    return km.eval(), (tm.eval() if tm is not None else None)


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one round")
    args = ap.parse_args()
    rounds = 1 if args.smoke else args.rounds
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    import kiln

    print(f"{'case':44} {'kiln-C ms':>10} {'torch ms':>10} {'torch/kiln':>10}")
    for name, kind, margs, shape in _cases(args.smoke):
        km, tm = _modules(kind, margs, torch)
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        kx = kiln.tensor(x)
        with kiln.no_grad():
            fn = kiln.compile(km, backend="c")
            got = _first(fn(kx)).numpy()
        if tm is not None:
            with torch.no_grad():
                want = _first(tm(torch.from_numpy(x))).numpy()
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4, err_msg=name)
        kt, tt = [], []
        for _ in range(rounds):
            with kiln.no_grad():
                t0 = time.perf_counter()
                fn(kx)
                kt.append((time.perf_counter() - t0) * 1e3)
            if tm is not None:
                with torch.no_grad():
                    tx = torch.from_numpy(x)
                    t0 = time.perf_counter()
                    tm(tx)
                    tt.append((time.perf_counter() - t0) * 1e3)
        k_ms = statistics.median(kt)
        if tt:
            t_ms = statistics.median(tt)
            print(f"{name:44} {k_ms:10.3f} {t_ms:10.3f} {t_ms / k_ms:9.2f}x")
        else:
            print(f"{name:44} {k_ms:10.3f} {'-':>10} {'-':>10}")


if __name__ == "__main__":
    main()
