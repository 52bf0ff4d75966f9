"""``kiln.cuda``: there is no GPU in Kiln, so that ``"cuda" if kiln.cuda.is_available() else
"cpu"`` picks the CPU, as ported PyTorch scripts expect.

>>> import kiln
>>> kiln.cuda.is_available(), kiln.cuda.device_count()
(False, 0)
"""

from __future__ import annotations


def is_available() -> bool:
    """Always False: Kiln compiles for the CPU."""
    return False


def device_count() -> int:
    """Always 0."""
    return 0


def manual_seed(seed: int) -> None:
    """Accepted and ignored (no CUDA generator exists), as torch does without a GPU."""


def manual_seed_all(seed: int) -> None:
    """Accepted and ignored, as :func:`manual_seed`."""
