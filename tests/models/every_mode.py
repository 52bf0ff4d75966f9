"""Shared check of the ported-model tests: a Kiln model (with torch's weights loaded) gives
torch's outputs in eager mode, traced (kiln.trace) and compiled with the C backend."""

from __future__ import annotations

import numpy as np

import kiln


def flat(out):
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flat(o)]
    return [out]


def assert_matches_torch_in_every_mode(torch, tmodel, kmodel, arrays, label, rtol=1e-4,
                                       atol=1e-5):
    with torch.no_grad():
        want = [t.numpy() for t in flat(tmodel(*[torch.from_numpy(a) for a in arrays]))]
    kin = [kiln.tensor(a) for a in arrays]
    with kiln.no_grad():
        runs = {"eager": kmodel(*kin), "traced": kiln.trace(kmodel, *kin)(*kin),
                "c": kiln.compile(kmodel, backend="c")(*kin)}
    for mode, out in runs.items():
        got = [t.numpy() for t in flat(out)]
        assert len(got) == len(want), f"{label} {mode}: {len(got)} outputs, torch {len(want)}"
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"{label} {mode}")
