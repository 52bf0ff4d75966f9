"""Helpers every stage uses and that know nothing about tensors: atomic file writes
(:mod:`.atomic`), canonical JSON (:mod:`.canonical`), pytrees (:mod:`.pytree`), the on-disk
cache directory (:mod:`.cachedir`) and the ``KILN_DEBUG`` level (:mod:`.debug`).

Layer: the bottom, above kiln.errors only. May import kiln.errors and third-party packages.
"""
