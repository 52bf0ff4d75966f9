"""kiln.utils.data: datasets, samplers, DataLoader and collation, against torch.utils.data."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

import kiln
from kiln.errors import ArgumentError, ShapeError, ValueArgumentError
from kiln.utils.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    SequentialSampler,
    Subset,
    TensorDataset,
    default_collate,
    random_split,
)


def _ds(n=10):
    x = kiln.tensor(np.arange(n * 2, dtype=np.float32).reshape(n, 2))
    return TensorDataset(x, kiln.arange(n))


@pytest.mark.parametrize("batch_size, drop_last, count, last", [
    (3, False, 4, 1), (3, True, 3, 3), (5, False, 2, 5), (1, False, 10, 1), (12, False, 1, 10)])
def test_batches_in_order(batch_size, drop_last, count, last):
    loader = DataLoader(_ds(), batch_size=batch_size, drop_last=drop_last)
    batches = list(loader)
    assert len(batches) == count == len(loader)
    assert batches[-1][0].shape == (last, 2) and batches[-1][1].shape == (last,)
    ys = [v for _, y in batches for v in y.tolist()]
    assert ys == list(range(len(ys)))
    assert isinstance(batches[0], list)  # torch returns a list for tuple samples


def test_shuffle_follows_the_generator_and_changes_per_epoch():
    def order(loader):
        return [v for _, y in loader for v in y.tolist()]

    a = DataLoader(_ds(), batch_size=4, shuffle=True, generator=kiln.Generator().manual_seed(3))
    b = DataLoader(_ds(), batch_size=4, shuffle=True, generator=kiln.Generator().manual_seed(3))
    e1, e2 = order(a), order(a)
    assert e1 == order(b) and e2 == order(b)
    assert sorted(e1) == list(range(10)) and e1 != e2
    kiln.manual_seed(0)
    c = order(DataLoader(_ds(), batch_size=4, shuffle=True))
    kiln.manual_seed(0)
    assert c == order(DataLoader(_ds(), batch_size=4, shuffle=True))


def test_fast_tensor_dataset_path_equals_stacking():
    ds = _ds()
    fast = list(DataLoader(ds, batch_size=4))
    slow = list(DataLoader(ds, batch_size=4, collate_fn=default_collate))
    for f, s in zip(fast, slow):
        assert [t.tolist() for t in f] == [t.tolist() for t in s]


@pytest.mark.torch
def test_default_collate_matches_torch():
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_collate as tcollate

    Point = namedtuple("Point", "x y")
    samples = [
        [{"a": (1, 2.5, True), "b": np.ones(2, np.float32) * i, "s": f"n{i}", "p": Point(i, -i)}
         for i in range(3)],
        [(np.arange(3) + i, [float(i), 2 * i]) for i in range(2)],
    ]

    def norm(v):
        if isinstance(v, (kiln.Tensor, torch.Tensor)):
            return (str(v.dtype).split(".")[-1], np.asarray(v.tolist()).tolist())
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return (type(v).__name__, [norm(x) for x in v])
        return v

    for batch in samples:
        assert norm(default_collate(batch)) == norm(tcollate(batch))


def test_map_and_iterable_datasets():
    class Squares(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return {"x": float(i), "y": i * i}

    out = list(DataLoader(Squares(), batch_size=2))
    assert out[0]["x"].dtype == kiln.float64 and out[2]["y"].tolist() == [16]
    assert [d["y"] for d in DataLoader(Squares(), batch_size=None)] == [0, 1, 4, 9, 16]

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(7))

    assert [b.tolist() for b in DataLoader(Stream(), batch_size=3, drop_last=True)] == \
        [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ArgumentError, match="IterableDataset"):
        DataLoader(Stream(), shuffle=True)


def test_samplers_subsets_and_splits():
    loader = DataLoader(_ds(), batch_sampler=BatchSampler(SequentialSampler(range(10)), 4, True))
    assert [y.tolist() for _, y in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    sub = Subset(_ds(), [9, 0])
    assert [sub[i][1].item() for i in range(2)] == [9, 0]
    both = ConcatDataset([_ds(3), _ds(2)])
    assert len(both) == 5 and both[4][1].item() == 1
    g = kiln.Generator().manual_seed(0)
    parts = random_split(_ds(), [6, 4], generator=g)
    assert [len(p) for p in parts] == [6, 4]
    idx = sorted(parts[0].indices + parts[1].indices)
    assert idx == list(range(10))
    assert [len(p) for p in random_split(range(10), [0.5, 0.3, 0.2])] == [5, 3, 2]
    with pytest.raises(ValueArgumentError, match="random_split"):
        random_split(range(10), [3, 3])


def test_bad_arguments():
    with pytest.raises(ShapeError, match="same first dim"):
        TensorDataset(kiln.ones(3), kiln.ones(4))
    with pytest.raises(ArgumentError, match="batch_size"):
        DataLoader(_ds(), batch_size=0)
    with pytest.raises(ArgumentError, match="kiln.Generator"):
        DataLoader(_ds(), shuffle=True, generator=np.random.default_rng(0))
    with pytest.raises(ShapeError, match="one shape"):
        default_collate([kiln.ones(2), kiln.ones(3)])
