"""Batching op-table samples into few C compiles, for tests/c/test_opinfo_c.py.

One C compile costs ~0.1-0.5 s, and the table has ~3,000 samples: compiling each alone
would take the whole suite's budget. So a *batch* of cases (entry, dtype, sample) becomes
ONE function of all their arrays that returns all their outputs, traced into one graph and
compiled once. Cases are independent (no array is shared), so a batch computes exactly
what its members compute alone; the backend fuses and schedules the members' nodes side by
side.

When a batch fails in any way (trace, compile, run, mismatch), :func:`run_cases` re-runs its
members one by one, so every failure names the exact entry, dtype and sample.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from opinfo import SEED, OpInfo, Sample, describe_args, flat_outputs

import kiln


@dataclasses.dataclass
class Case:
    """One sample of one entry in one dtype, as a function of the sample's arrays."""

    info: OpInfo
    dtype: str
    index: int
    sample: Sample
    variant: str = ""  # "" (the table's sample), "+nan/inf" or "+leading dim N"

    @property
    def name(self) -> str:
        return f"{self.info.name} [{self.dtype} sample {self.index}: {self.sample!r}]"

    @property
    def arrays(self) -> list[np.ndarray]:
        return self.sample.arrays()

    def fn(self) -> Callable[..., Any]:
        return self.info.flat_bind(self.sample)


def cases_of(info: OpInfo, dtypes: Sequence[str]) -> list[Case]:
    return [Case(info, d, i, s) for d in info.dtypes if d in dtypes
            for i, s in enumerate(info.samples(d))]


# ------------------------------------------------------------------------------------------
# variants of a table sample: the NaN/inf propagation and large sizes


SPECIALS = (np.nan, np.inf, -np.inf)
LARGE = 40_000  # elements: above the 32768 element-operations where kernels go parallel


def with_arrays(case: Case, arrays: list[np.ndarray], tag: str) -> Case:
    s = case.sample
    desc = f"{s.desc or describe_args(s.args, s.kwargs)} {tag}"
    sample = Sample(s.with_arrays(arrays), dict(s.kwargs), desc, s.grad_args, dict(s.skips))
    return Case(case.info, case.dtype, case.index, sample, tag)


def specials_variant(case: Case) -> Case | None:
    """The sample with NaN, +inf and -inf planted in every floating array (spread over it,
    so each lands in another row where there are rows); None without floating arrays."""
    arrays = [np.array(a, order="C", copy=True) for a in case.arrays]
    planted = False
    for a in arrays:
        if a.dtype.kind != "f" or a.size == 0:
            continue
        flat = a.reshape(-1)
        for k, v in enumerate(SPECIALS):
            flat[(k * a.size) // len(SPECIALS)] = v
        planted = True
    return with_arrays(case, arrays, "+nan/inf") if planted else None


def large_variant(case: Case) -> Case | None:
    """The sample with a new leading dim L on every array, so the largest has >= LARGE
    elements (parallel loops, full vector blocks, peeled alignment). Slice ``l`` holds the
    sample's values rolled by ``l`` (same value set, so index arrays stay in range; another
    order per slice, so a thread computing the wrong slice shows). The op sees other ranks
    than the sample's: the variant is kept only if eager Kiln accepts it and returns as many
    outputs (then the interpreter is the reference, as for any program)."""
    arrays = case.arrays
    biggest = max((a.size for a in arrays), default=0)
    if biggest == 0:
        return None
    n_slices = -(-LARGE // biggest)
    big = []
    for a in arrays:
        flat = a.reshape(-1)
        n = max(flat.size, 1)
        rolled = (np.arange(flat.size)[None, :] - np.arange(n_slices)[:, None]) % n
        big.append(flat[rolled].reshape((n_slices,) + a.shape))
    variant = with_arrays(case, big, f"+leading dim {n_slices}")
    try:
        small = flat_outputs(seeded(case.fn(), *[kiln.from_numpy(a) for a in arrays]))
        large = flat_outputs(seeded(variant.fn(), *[kiln.from_numpy(a) for a in big]))
    except kiln.errors.KilnError:
        return None
    # An op whose output count follows the leading dim (unbind) would make thousands of
    # outputs (5 MB of C), and broadcasting can square the size ((L, 4) @ (L, 4, 3)): not
    # tests of large sizes.
    if len(large) != len(small) or sum(int(np.prod(o.shape)) for o in large) > 8 * LARGE:
        return None
    return variant


def batch_function(cases: Sequence[Case]) -> tuple[Callable[..., tuple], list[np.ndarray],
                                                   list[int]]:
    """(f, arrays, counts): ``f(*tensors)`` runs every case on its slice of ``tensors`` and
    returns all outputs flat; ``counts[i]`` is how many outputs case ``i`` contributes."""
    fns = [c.fn() for c in cases]
    sizes = [len(c.arrays) for c in cases]
    counts: list[int] = []

    def batch(*tensors: Any) -> tuple:
        outs: list[Any] = []
        k = 0
        record = not counts
        for fn, n in zip(fns, sizes, strict=True):
            got = flat_outputs(fn(*tensors[k:k + n]))
            k += n
            outs.extend(got)
            if record:
                counts.append(len(got))
        return tuple(outs)

    arrays = [a for c in cases for a in c.arrays]
    return batch, arrays, counts


def split(values: Sequence[Any], counts: Sequence[int]) -> list[list[Any]]:
    out, k = [], 0
    for n in counts:
        out.append(list(values[k:k + n]))
        k += n
    return out


def seeded(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` right after reseeding Kiln's generator (random entries draw in Python
    from it, so the compiled and interpreted runs see the same numbers)."""
    kiln.manual_seed(SEED)
    with np.errstate(all="ignore"):  # samples hold NaN/inf on purpose
        return fn(*args)


def run_cases(cases: Sequence[Case], check: Callable[[Sequence[Case]], None],
              failures: list[str]) -> int:
    """``check(cases)`` on the whole batch; when it raises, ``check([case])`` on each member,
    appending ``"<case name>: <error>"`` to ``failures`` for those that fail. Returns the
    number of check calls (compiles) made."""
    try:
        check(cases)
        return 1
    except Exception as e:  # noqa: BLE001 (any failure: retry one by one)
        batch_error = _describe(e)  # `e` itself is unbound after the except block
        if len(cases) == 1:
            failures.append(f"{cases[0].name}: {batch_error}")
            return 1
    calls, before = 1, len(failures)
    for case in cases:
        calls += 1
        try:
            check([case])
        except Exception as e:  # noqa: BLE001
            failures.append(f"{case.name}: {_describe(e)}")
    if len(failures) == before:  # only the batch fails: members interact in the backend
        names = "; ".join(c.name for c in cases)
        failures.append(f"batch of {len(cases)} fails, each member passes alone "
                        f"({names}): {batch_error}")
    return calls


def _describe(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}"
    return text if len(text) < 1500 else text[:1500] + " ..."
