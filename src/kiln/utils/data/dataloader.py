"""``DataLoader``: batches of a dataset, in order or shuffled by a ``kiln.Generator``, and
``default_collate``, which stacks samples as torch's does.

Collation: tensors are stacked along a new first dim; Python floats become a float64
tensor, ints an int64 tensor, bools a bool tensor (torch's rule); NumPy arrays and numbers
become tensors; strings stay a list; dicts collate per key, tuples and lists per position
(returned as a list, as torch). A ``TensorDataset`` is batched with one gather per tensor
instead of one item at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError
from kiln.utils.data.dataset import IterableDataset, TensorDataset
from kiln.utils.data.sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler


def default_collate(batch: Sequence[Any]) -> Any:
    """Stack a list of samples into a batch (see the module docstring).

    >>> import kiln
    >>> from kiln.utils.data import default_collate
    >>> out = default_collate([(kiln.ones(2), 1), (kiln.zeros(2), 0)])
    >>> out[0].shape, out[1].tolist(), out[1].dtype
    ((2, 2), [1, 0], kiln.int64)
    """
    from kiln.core.creation import tensor
    from kiln.core.functional import stack

    if not batch:
        raise ArgumentError("default_collate: the batch is empty")
    elem = batch[0]
    if isinstance(elem, Tensor):
        shapes = {tuple(t.shape) for t in batch}
        if len(shapes) != 1:
            raise ShapeError(f"default_collate: samples must have one shape to be stacked, got "
                             f"{sorted(shapes)}")
        return stack(list(batch), 0)
    if isinstance(elem, np.ndarray):
        return default_collate([tensor(a) for a in batch])
    if isinstance(elem, bool):
        return tensor(list(batch), dtype="bool")
    if isinstance(elem, (int, np.integer)):
        return tensor([int(v) for v in batch], dtype="int64")
    if isinstance(elem, (float, np.floating)):
        return tensor([float(v) for v in batch], dtype="float64")
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, Mapping):
        return {k: default_collate([d[k] for d in batch]) for k in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple keeps its type
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, Sequence):
        if len({len(e) for e in batch}) != 1:
            raise ShapeError("default_collate: every sample in a batch must have the same "
                             "number of fields")
        return [default_collate(list(s)) for s in zip(*batch)]
    raise ArgumentError(f"default_collate: cannot batch samples of type {type(elem).__name__}; "
                        "expected tensors, NumPy arrays, numbers, strings, dicts or sequences")


class DataLoader:
    """Iterate over ``dataset`` in batches, as ``torch.utils.data.DataLoader``.

    ``batch_size`` (None: single samples, not collated), ``shuffle`` (a new order each pass,
    from ``generator`` or the default generator), ``drop_last``, ``sampler``,
    ``batch_sampler`` and ``collate_fn`` behave as in torch. ``num_workers`` and
    ``pin_memory`` are accepted; loading happens in the calling process.

    >>> import kiln
    >>> from kiln.utils.data import DataLoader, TensorDataset
    >>> ds = TensorDataset(kiln.arange(5.0))
    >>> [b[0].tolist() for b in DataLoader(ds, batch_size=2, drop_last=True)]
    [[0.0, 1.0], [2.0, 3.0]]
    """

    def __init__(self, dataset: Any, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler: Any = None, batch_sampler: Any = None, num_workers: int = 0,
                 collate_fn: Callable[[list], Any] | None = None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn: Any = None,
                 multiprocessing_context: Any = None, generator: Any = None, *,
                 prefetch_factor: int | None = None, persistent_workers: bool = False,
                 pin_memory_device: str = "", in_order: bool = True) -> None:
        from kiln.core.random import Generator

        if generator is not None and not isinstance(generator, Generator):
            raise ArgumentError(f"DataLoader: generator must be a kiln.Generator, got "
                                f"{type(generator).__name__}")
        if batch_size is not None and (isinstance(batch_size, bool) or
                                       not isinstance(batch_size, int) or batch_size < 1):
            raise ArgumentError(f"DataLoader: batch_size must be a positive int or None, got "
                                f"{batch_size!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ArgumentError(f"DataLoader: num_workers must be an int >= 0, got "
                                f"{num_workers!r}")
        self.dataset = dataset
        self.num_workers = num_workers
        self.generator = generator
        self.drop_last = bool(drop_last)
        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable and (shuffle or sampler is not None or batch_sampler is not None):
            raise ArgumentError("DataLoader: shuffle, sampler and batch_sampler do not apply "
                                "to an IterableDataset")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ArgumentError("DataLoader: batch_sampler is exclusive with batch_size, "
                                    "shuffle, sampler and drop_last")
            batch_size = None
        elif sampler is not None and shuffle:
            raise ArgumentError("DataLoader: sampler is exclusive with shuffle")
        if sampler is None and not self._iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle \
                else SequentialSampler(dataset)
        if batch_sampler is None and batch_size is not None and not self._iterable:
            batch_sampler = BatchSampler(sampler, batch_size, self.drop_last)
        self.batch_size = batch_size
        self.sampler: Sampler | None = sampler
        self.batch_sampler = batch_sampler
        self._auto_collation = batch_sampler is not None or \
            (self._iterable and batch_size is not None)
        self.collate_fn = collate_fn if collate_fn is not None else (
            default_collate if self._auto_collation else _convert)

    def __len__(self) -> int:
        if self._iterable:
            raise ArgumentError("DataLoader: an IterableDataset has no length")
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        return len(self.sampler)  # type: ignore[arg-type]

    def _fast_batch(self, indices: list[int]) -> Any:
        """A TensorDataset batch: one gather per tensor (what stacking the rows would give)."""
        from kiln.core.creation import tensor

        idx = tensor(indices, dtype="int64")
        return [t[idx] for t in self.dataset.tensors]

    def __iter__(self) -> Iterator[Any]:
        if self._iterable:
            yield from self._iter_iterable()
            return
        if self.batch_sampler is None:
            for i in self.sampler:  # type: ignore[union-attr]
                yield self.collate_fn(self.dataset[i])
            return
        fast = type(self.dataset) is TensorDataset and self.collate_fn is default_collate
        for indices in self.batch_sampler:
            if fast:
                yield self._fast_batch(list(indices))
            else:
                yield self.collate_fn([self.dataset[i] for i in indices])

    def _iter_iterable(self) -> Iterator[Any]:
        if self.batch_size is None:
            for item in self.dataset:
                yield self.collate_fn(item)
            return
        batch: list[Any] = []
        for item in self.dataset:
            batch.append(item)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.collate_fn(batch)


def _convert(sample: Any) -> Any:
    """torch's default_convert (batch_size=None): NumPy arrays become tensors, the rest stays."""
    from kiln.core.creation import tensor

    if isinstance(sample, np.ndarray):
        return tensor(sample)
    if isinstance(sample, Mapping):
        return {k: _convert(v) for k, v in sample.items()}
    if isinstance(sample, tuple) and not hasattr(sample, "_fields"):
        return tuple(_convert(v) for v in sample)
    if isinstance(sample, list):
        return [_convert(v) for v in sample]
    return sample
