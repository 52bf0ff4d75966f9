"""torch's lazy convolutions (in_channels from the first input or a loaded state_dict, then
the plain module; against torch with its weights loaded after its own first forward) and the
fractional max-pool modules with fixed samples."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln import nn

CASES = [("LazyConv1d", (4, 3), (2, 3, 7)), ("LazyConv2d", (4, 3), (2, 3, 6, 5)),
         ("LazyConv3d", (2, 2), (1, 3, 4, 4, 4)), ("LazyConvTranspose1d", (4, 3), (2, 3, 5)),
         ("LazyConvTranspose2d", (2, 3), (1, 3, 4, 4)),
         ("LazyConvTranspose3d", (2, 2), (1, 3, 2, 2, 2))]


@pytest.mark.parametrize("name, init, shape", CASES)
def test_lazy_becomes_the_plain_module(name: str, init: tuple, shape: tuple) -> None:
    m = getattr(nn, name)(*init)
    out = m(kiln.ones(*shape))
    assert type(m).__name__ == name.replace("Lazy", "") and m.in_channels == shape[1]
    assert out.shape[1] == init[0]


@pytest.mark.parametrize("name, init, shape", CASES)
def test_lazy_matches_torch(name: str, init: tuple, shape: tuple) -> None:
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    tm = getattr(torch.nn, name)(*init, groups=1)
    want = tm(torch.from_numpy(x)).detach().numpy()
    km = getattr(nn, name)(*init, groups=1)
    km.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    got = km(kiln.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_lazy_groups_from_positional_arguments() -> None:
    m = nn.LazyConv2d(4, 3, 1, 0, 1, 2)  # groups=2, positional as in Conv2d
    m.load_state_dict({"weight": np.zeros((4, 3, 3, 3), np.float32),
                       "bias": np.zeros(4, np.float32)})
    assert m.in_channels == 6 and m.groups == 2


def test_lazy_rejects_a_wrong_rank() -> None:
    with pytest.raises(kiln.KilnError, match="expected 3-D or 4-D"):
        nn.LazyConv2d(4, 3)(kiln.ones(2, 3))


def test_fractional_max_pool_modules_keep_their_samples() -> None:
    samples = kiln.tensor([[[0.25, 0.75]]])
    m = nn.FractionalMaxPool2d(2, output_size=3, _random_samples=samples)
    assert "_random_samples" in m.state_dict()
    x = kiln.arange(36.0).reshape(1, 1, 6, 6)
    want = nn.functional.fractional_max_pool2d(x, 2, 3, _random_samples=samples)
    assert m(x).tolist() == want.tolist()
    with pytest.raises(kiln.KilnError, match="exactly one"):
        nn.FractionalMaxPool3d(2)


@pytest.mark.parametrize("name, kwargs, shape", [
    ("FractionalMaxPool2d", {"output_size": (3, 2)}, (2, 2, 7, 6)),
    ("FractionalMaxPool3d", {"output_ratio": 0.5, "return_indices": True}, (1, 2, 6, 5, 6))])
def test_fractional_modules_match_torch(name: str, kwargs: dict, shape: tuple) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    samples = rng.uniform(0, 1, (shape[0], shape[1], len(shape) - 2)).astype(np.float32)
    tm = getattr(torch.nn, name)(2, _random_samples=torch.from_numpy(samples), **kwargs)
    km = getattr(nn, name)(2, _random_samples=kiln.from_numpy(samples), **kwargs)
    want = tm(torch.from_numpy(x))
    got = km(kiln.from_numpy(x))
    want = want if isinstance(want, tuple) else (want,)
    got = got if isinstance(got, tuple) else (got,)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g.detach().numpy(), w.detach().numpy())
