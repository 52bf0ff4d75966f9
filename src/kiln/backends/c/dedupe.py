"""One C function for kernels that differ only in which buffers they touch.

A model whose layers repeat (a transformer's blocks, a ResNet's stages) schedules the same
kernel once per layer: the generated text differs only in buffer ids (``P[12]``, ``b12``)
and in the numbers of temporaries (``t40``, ``a5``, ``v5``), which come from graph-wide
counters. The C compiler's time grows with the text it is given, so compiling each copy is
most of a cold compile of such a model.

:func:`share_kernels` renames each kernel's buffers to their order of first use (``P[0]``,
``b0``, ...) and its temporaries likewise; kernels whose renamed text (comments aside) is
equal become one function, called with a small array of the buffers each call site uses
instead of the whole ``P``. A kernel without a twin keeps its text exactly.
"""

from __future__ import annotations

import re

# Identifier families the emitters number from graph-wide counters. Renaming is a bijection
# on each family within one kernel, so it never changes what a kernel computes; a family
# left out only means fewer kernels found equal.
_NUMBERED = re.compile(r"\b([tav])(\d+)(?=\b|_)")
_BUFFER = re.compile(r"\bb(\d+)(?=\b|_)")
_SLOT = re.compile(r"\bP\[(\d+)\]")
_COMMENT = re.compile(r"/\*.*?\*/", re.S)


def _renamed(code: str) -> tuple[str, list[int]]:
    """The kernel's text with buffers and temporaries numbered in order of first use, and
    the buffer ids in that order (empty when the kernel is to be left alone)."""
    slots: dict[str, str] = {}
    order: list[int] = []
    for m in _SLOT.finditer(code):
        if m.group(1) not in slots:
            slots[m.group(1)] = str(len(slots))
            order.append(int(m.group(1)))
    if any(m.group(1) not in slots for m in _BUFFER.finditer(code)):
        return code, []  # a buffer not read from P: leave this kernel alone
    text = _SLOT.sub(lambda m: f"P[{slots[m.group(1)]}]", code)
    text = _BUFFER.sub(lambda m: f"b{slots[m.group(1)]}", text)
    numbers: dict[tuple[str, str], str] = {}

    def number(m: re.Match) -> str:
        key = (m.group(1), m.group(2))
        if key not in numbers:
            numbers[key] = str(sum(1 for k in numbers if k[0] == key[0]))
        return m.group(1) + numbers[key]

    return _NUMBERED.sub(number, text), order


def share_kernels(bodies: list[tuple[int, str]]) -> tuple[list[tuple[int, str]], dict[int, str]]:
    """``bodies``: (kernel id, C text of ``static int64_t k<id>(void **restrict P, ...)``).

    Returns the bodies to emit, in order (twins dropped, the first of each group rewritten
    to read its buffers from slots 0..n-1), and per kernel id the C statement calling it."""
    groups: dict[str, list[tuple[int, str, str, list[int]]]] = {}
    for kid, code in bodies:
        text, order = _renamed(code)
        header = f"k{kid}("
        key = f"unique {kid}" if not order or header not in text else \
            _COMMENT.sub("", text.replace(header, "k(", 1))
        groups.setdefault(key, []).append((kid, code, text, order))
    emitted: list[tuple[int, str]] = []
    calls: dict[int, str] = {}
    for members in groups.values():
        first, code, text, _ = members[0]
        if len(members) == 1:
            emitted.append((first, code))
            calls[first] = f"e = k{first}(P, S);"
            continue
        users = ", ".join(f"k{kid}" for kid, _, _, _ in members[1:])
        emitted.append((first, f"/* also computes {users} (kiln.backends.c.dedupe) */\n{text}"))
        for kid, _, _, order in members:
            slots = ", ".join(f"P[{b}]" for b in order)
            calls[kid] = f"{{ void *L[] = {{{slots}}}; e = k{first}(L, S); }}"
    return emitted, calls
