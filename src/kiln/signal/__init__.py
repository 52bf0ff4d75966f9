"""``kiln.signal``: torch.signal's window functions (``kiln.signal.windows``).

>>> import kiln
>>> kiln.signal.windows.hann(4, sym=False).tolist()
[0.0, 0.5, 1.0, 0.5]
"""

from __future__ import annotations

from kiln.signal import windows

__all__ = ["windows"]
