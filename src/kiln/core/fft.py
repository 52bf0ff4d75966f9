"""``kiln.fft``: the frequency shifts of torch.fft (``fftshift``, ``ifftshift``) for real
tensors. The transforms themselves return complex tensors, and Kiln has no complex dtype:
asking for one is an error that says so.

>>> import kiln
>>> kiln.fft.fftshift(kiln.arange(4)).tolist()
[2, 3, 0, 1]
"""

from __future__ import annotations

from typing import Any

from kiln.core.numerics import fftshift, ifftshift

_TRANSFORMS = {"fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "irfft", "rfft2",
               "irfft2", "rfftn", "irfftn", "hfft", "ihfft", "hfft2", "ihfft2", "hfftn",
               "ihfftn", "fftfreq", "rfftfreq"}


def __getattr__(name: str) -> Any:
    from kiln.errors import AttributeError_, missing_attribute

    if name in _TRANSFORMS:
        raise AttributeError_(f"kiln.fft has no {name}: Fourier transforms return complex "
                              "tensors, and Kiln has no complex dtype (fftshift and ifftshift "
                              "work on real tensors)")
    raise missing_attribute("module 'kiln.fft'", name, ["fftshift", "ifftshift"])


__all__ = ["fftshift", "ifftshift"]
