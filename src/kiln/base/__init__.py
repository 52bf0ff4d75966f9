"""Helpers every stage uses and that know nothing about tensors: atomic file writes
(:mod:`.atomic`), canonical JSON (:mod:`.canonical`), pytrees (:mod:`.pytree`), the on-disk
cache directory (:mod:`.cachedir`), the ``KILN_DEBUG`` level (:mod:`.debug`) and the
signatures of artifacts that hold native code (:mod:`.trust`).

Layer: the bottom, above kiln.errors only. May import kiln.errors and third-party packages.
"""
