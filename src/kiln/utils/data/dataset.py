"""Datasets: ``Dataset`` (map-style), ``IterableDataset``, ``TensorDataset``, ``Subset``,
``ConcatDataset`` and ``random_split``, as in ``torch.utils.data``."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from typing import Any

from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, IndexError_, ShapeError, ValueArgumentError


class Dataset:
    """A map-style dataset: subclasses define ``__getitem__(index)`` and ``__len__``.

    >>> from kiln.utils.data import Dataset
    >>> class Squares(Dataset):
    ...     def __len__(self): return 4
    ...     def __getitem__(self, i): return i * i
    >>> [Squares()[i] for i in range(4)]
    [0, 1, 4, 9]
    """

    def __getitem__(self, index: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A dataset read by iteration (``__iter__``); a DataLoader batches what it yields."""

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class TensorDataset(Dataset):
    """Samples are rows of the given tensors (all with the same first dim).

    >>> import kiln
    >>> from kiln.utils.data import TensorDataset
    >>> ds = TensorDataset(kiln.ones(3, 2), kiln.arange(3))
    >>> len(ds), ds[1][1].item()
    (3, 1)
    """

    def __init__(self, *tensors: Tensor) -> None:
        if not tensors:
            raise ArgumentError("TensorDataset: expected at least one tensor")
        for i, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise ArgumentError(f"TensorDataset: argument {i} must be a kiln.Tensor, got "
                                    f"{type(t).__name__}")
            if t.ndim == 0 or t.shape[0] != tensors[0].shape[0]:
                raise ShapeError("TensorDataset: every tensor needs the same first dim (the "
                                 f"sample count), got shapes {[tuple(x.shape) for x in tensors]}")
        self.tensors = tuple(tensors)

    def __getitem__(self, index: Any) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return int(self.tensors[0].shape[0])


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = list(indices)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, list):
            return [self.dataset[self.indices[i]] for i in index]
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """Several datasets one after the other."""

    def __init__(self, datasets: Sequence[Dataset]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ArgumentError("ConcatDataset: expected at least one dataset")
        self.cumulative_sizes: list[int] = []
        total = 0
        for d in self.datasets:
            total += len(d)  # type: ignore[arg-type]
            self.cumulative_sizes.append(total)

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError_(f"ConcatDataset: index {index} is out of range for {n} samples")
        k = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[k - 1] if k else 0
        return self.datasets[k][index - start]


def random_split(dataset: Dataset, lengths: Sequence[int | float],
                 generator: Any = None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random subsets of the given lengths (or
    fractions summing to 1, the remainder spread round-robin, as torch).

    >>> import kiln
    >>> from kiln.utils.data import random_split
    >>> a, b = random_split(range(10), [0.7, 0.3], generator=kiln.Generator().manual_seed(0))
    >>> len(a), len(b), sorted(list(a.indices) + list(b.indices)) == list(range(10))
    (7, 3, True)
    """
    from kiln.core.creation import randperm

    n = len(dataset)  # type: ignore[arg-type]
    lengths = list(lengths)
    if lengths and all(isinstance(v, float) for v in lengths) and \
            math.isclose(sum(lengths), 1.0) and sum(lengths) <= 1.0 + 1e-9:
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in lengths) or \
            sum(lengths) != n:  # type: ignore[arg-type]
        raise ValueArgumentError(f"random_split: lengths must be non-negative ints summing to "
                                 f"the dataset's {n} samples (or fractions summing to 1), got "
                                 f"{lengths}")
    order = randperm(n, generator=generator).tolist()
    out, start = [], 0
    for k in lengths:
        out.append(Subset(dataset, order[start:start + int(k)]))  # type: ignore[arg-type]
        start += int(k)
    return out
