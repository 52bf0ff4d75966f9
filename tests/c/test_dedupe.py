"""Kernels that differ only in their buffers share one C function (kiln.backends.c.dedupe)."""

from __future__ import annotations

import re

import kiln
import kiln.nn.functional as F
from kiln.backends.c.dedupe import share_kernels
from tests.c.conftest import check

_KERNEL = """/* kernel {k} (rows): computes x_{k} */
static int64_t k{k}(void **restrict P, const int64_t *restrict S)
{{
    const float *restrict b{i} = (const float *)P[{i}];
    float *restrict b{o} = (float *)P[{o}];
    float a{a} = 0.0f;
    for (int64_t j0 = 0; j0 < 8; ++j0) {{
        const float t{t} = b{i}[j0];
        a{a} += t{t};
        b{o}[j0] = t{t};
    }}
    const float v{a} = a{a};
    b{o}[0] = v{a};
    return 0;
}}
"""


def test_twins_become_one_function_called_with_their_own_buffers():
    bodies = [(0, _KERNEL.format(k=0, i=0, o=3, a=5, t=40)),
              (1, _KERNEL.format(k=1, i=3, o=7, a=9, t=77)),
              (2, _KERNEL.format(k=2, i=7, o=3, a=5, t=40).replace("8", "9"))]
    emitted, calls = share_kernels(bodies)
    assert [k for k, _ in emitted] == [0, 2]
    assert "also computes k1" in emitted[0][1]
    assert "P[0]" in emitted[0][1] and "P[1]" in emitted[0][1] and "P[3]" not in emitted[0][1]
    assert calls[0] == "{ void *L[] = {P[0], P[3]}; e = k0(L, S); }"
    assert calls[1] == "{ void *L[] = {P[3], P[7]}; e = k0(L, S); }"
    assert calls[2] == "e = k2(P, S);"
    assert emitted[1][1] == bodies[2][1]  # a kernel without a twin keeps its text


def test_a_kernel_with_a_buffer_it_does_not_take_from_P_is_left_alone():
    odd = _KERNEL.format(k=0, i=0, o=3, a=5, t=40).replace("b3[0] = v5", "b9[0] = v5")
    emitted, calls = share_kernels([(0, odd), (1, odd.replace("k0(", "k1("))])
    assert len(emitted) == 2 and calls[1] == "e = k1(P, S);"


class _Blocks(kiln.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = kiln.nn.ModuleList(kiln.nn.Linear(16, 16) for _ in range(4))
        self.norms = kiln.nn.ModuleList(kiln.nn.LayerNorm(16) for _ in range(4))

    def forward(self, x):
        for lin, norm in zip(self.layers, self.norms, strict=True):
            x = norm(F.gelu(lin(x)) + x)
        return F.softmax(x, dim=-1)


def test_repeated_layers_compile_once_and_match_the_interpreter():
    kiln.manual_seed(0)
    fn = check(_Blocks(), kiln.randn(8, 16))
    functions = re.findall(r"int64_t (k\d+)\(void \*\*restrict P", fn.source)
    assert len(functions) < len(fn.plan["calls"])
    assert "kiln.backends.c.dedupe" in fn.source
