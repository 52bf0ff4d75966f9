"""Bytes of a compiled C function, and back (no pickle, no compiler needed to load).

Payload (inside the envelope of :mod:`kiln.backends.envelope`, backend ``"c"``): one
safetensors file holding

- ``__library__``: the shared library's bytes (U8);
- ``const:<key>``: every graph constant's current value;
- metadata ``kiln.c``: the plan as canonical JSON: format and version, the C source, the
  compile flags and target and toolchain fingerprint, guards (inputs, symbols and their
  ranges), buffers, the arena's liveness table, random draws, outputs, check messages and
  the kernel summary.

Loading checks the format and version, that this CPU has the features the library was
compiled for (``plan["arch"]``, ``plan["cpu_features"]``: see :mod:`.cpu`), loads the library
from memory, and needs only the BLAS wheel the library links (``plan["gemm"]``: MKL or
OpenBLAS); a missing feature or wheel is a BackendError naming it.
"""

from __future__ import annotations

import numpy as np

from kiln.backends.c.plan import PLAN_FORMAT, PLAN_VERSION
from kiln.backends.envelope import write_envelope
from kiln.base import canonical
from kiln.core.tensor import Tensor
from kiln.errors import SerializationError
from kiln.io import weights

LIB_KEY = "__library__"
CONST_PREFIX = "const:"


def serialize(fn: object) -> bytes:
    from kiln.backends.c.runtime import CFunction

    assert isinstance(fn, CFunction)
    arrays = {LIB_KEY: np.frombuffer(fn.library, np.uint8)}
    for key, t in fn.constants.items():
        # not ascontiguousarray: it makes a 0-d constant 1-d
        arrays[CONST_PREFIX + key] = np.asarray(t._concrete("serialization"), order="C")
    payload = weights.save_bytes(arrays, metadata={"kiln.c": canonical.dumps(fn.plan)})
    return write_envelope("c", payload)


def deserialize(payload: bytes) -> object:
    from kiln.backends.c.blas import prepare_recorded
    from kiln.backends.c.cpu import check_features
    from kiln.backends.c.runtime import CFunction

    arrays, meta = weights.load_bytes(payload)
    if "kiln.c" not in meta or LIB_KEY not in arrays:
        raise SerializationError("not a Kiln C-backend artifact (no plan or library)")
    try:
        plan = canonical.loads(meta["kiln.c"])
    except ValueError as e:
        raise SerializationError(f"C-backend plan does not parse: {e}") from e
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise SerializationError("C-backend artifact has no plan of format 'kiln.c.plan'")
    if plan.get("version") != PLAN_VERSION:
        raise SerializationError(f"C-backend plan version {plan.get('version')!r} is not "
                                 f"supported (this Kiln reads version {PLAN_VERSION})")
    # before dlopen: a library built for another CPU would die of SIGILL at its first call
    check_features(plan)
    constants = {k[len(CONST_PREFIX):]: Tensor._wrap(v) for k, v in arrays.items()
                 if k.startswith(CONST_PREFIX)}
    # before dlopen: a missing BLAS wheel is a clear error, not a loader failure
    prepare_recorded(plan.get("gemm"))
    return CFunction(plan, arrays[LIB_KEY].tobytes(), constants)
