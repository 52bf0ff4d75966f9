"""Conformance entries of torch's ``*_copy`` ops (kiln.core.copies): the view op, copied."""

from __future__ import annotations

from harness import entry, f, t

E = ()

ENTRIES = [
    entry("expand_copy", f(t(3, 1), (3, 4)), f(t(E), (2,))),
    entry("unsqueeze_copy", f(t(2, 3), 1), f(t(E), 0)),
    entry("squeeze_copy", f(t(2, 1, 3)), f(t(2, 1, 3), 1)),
    entry("transpose_copy", f(t(2, 3, 4), 0, 2)),
    entry("permute_copy", f(t(2, 3, 4), (2, 0, 1))),
    entry("t_copy", f(t(2, 3)), f(t(3))),
    entry("view_copy", f(t(2, 6), (3, 4)), f(t(2, 6), (-1,))),
    entry("narrow_copy", f(t(4, 3), 0, 1, 2), f(t(4, 3), 1, 0, 3)),
    entry("select_copy", f(t(4, 3), 1, 2)),
    entry("unfold_copy", f(t(2, 7), 1, 3, 2)),
    entry("detach_copy", f(t(2, 3), _grad=False), grad=False),
    entry("alias_copy", f(t(2, 3))),
    entry("unbind_copy", f(t(3, 2)), f(t(2, 3), 1)),
    entry("split_copy", f(t(5, 2), 2), f(t(2, 6), 3, 1)),
    entry("split_with_sizes_copy", f(t(5, 2), [2, 3]), f(t(2, 6), [1, 5], 1)),
    entry("slice_copy", f(t(6, 2), 0, 1, 5, 2), f(t(2, 6), 1, 2)),
]
