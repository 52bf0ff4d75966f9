"""``load_hf``: a Hugging Face checkpoint onto a Kiln model whose names match the original's.

Kiln models written after a Hugging Face one keep its module names (``kiln.models.BertModel``
has ``encoder.layer.0.attention.self.query``), so the mapping is by name. What differs between
checkpoints of the same architecture is handled here:

- a prefix: ``BertForMaskedLM`` checkpoints hold ``bert.encoder...``, ``BertModel`` ones
  ``encoder...``; the model's keys are matched with the checkpoint's under the one prefix
  (added or removed) that matches most of them;
- old LayerNorm names ``gamma`` / ``beta`` (for ``weight`` / ``bias``);
- buffers that checkpoints carry but are not weights (``position_ids``, GPT-2's
  ``attn.bias`` / ``attn.masked_bias`` causal masks): dropped when the model lacks them.

Everything else goes through ``Module.load_state_dict(strict=...)``, whose error names the
missing and unexpected keys with their shapes.
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any

from kiln.errors import ArgumentError, SerializationError

# Checkpoint entries that are buffers recomputed by the model, not weights.
KNOWN_BUFFERS = re.compile(r"(^|\.)(position_ids|attn\.masked_bias|attn\.bias|"
                           r"rotary_emb\.inv_freq)$")
# In the order Hugging Face's from_pretrained looks for them.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.pt", "pytorch_model.pt")
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def checkpoint_files(path_or_dir: str | os.PathLike[str]) -> list[pathlib.Path]:
    """The weight files of a checkpoint: the file itself, or the ones a model folder holds
    (a single weights file, or the shards its ``*.index.json`` lists)."""
    import json

    root = pathlib.Path(path_or_dir)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(2, "No such file or directory", os.fspath(root))
    for name in WEIGHT_FILES:
        if (root / name).is_file():
            return [root / name]
    for name in SHARD_INDEXES:
        index = root / name
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text("utf-8"))["weight_map"].values()))
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise SerializationError(f"{os.fspath(index)}: no weight_map: {e}") from None
            if not all(isinstance(s, str) and "/" not in s and s not in (".", "..")
                       for s in shards):
                raise SerializationError(f"{os.fspath(index)}: shard names must be file names")
            return [root / s for s in shards]
    raise ArgumentError(f"load_hf: {os.fspath(root)!r} holds none of "
                        + ", ".join(WEIGHT_FILES + SHARD_INDEXES))


def hf_state_dict(model_keys: list[str], checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """Rename ``checkpoint``'s entries to ``model_keys``' names (prefix, gamma/beta) and drop
    the known buffers the model does not have; other entries are kept as they are.

    >>> hf_state_dict(["encoder.w", "norm.weight"],
    ...               {"bert.encoder.w": 1, "bert.norm.gamma": 2, "bert.position_ids": 3})
    {'encoder.w': 1, 'norm.weight': 2}
    """
    wanted = set(model_keys)

    def renamed(key: str) -> str:
        return re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", key))

    entries = {renamed(k): v for k, v in checkpoint.items()}
    best, best_hits = (None, None), sum(k in wanted for k in entries)
    prefixes = {k.split(".", 1)[0] + "." for k in list(entries) + model_keys if "." in k}
    for p in prefixes:
        strip = sum(k.removeprefix(p) in wanted for k in entries if k.startswith(p))
        add = sum(p + k in wanted for k in entries)
        if strip > best_hits:
            best, best_hits = (p, None), strip
        if add > best_hits:
            best, best_hits = (None, p), add
    strip_p, add_p = best
    out: dict[str, Any] = {}
    for key, value in entries.items():
        if strip_p is not None and key.startswith(strip_p):
            key = key.removeprefix(strip_p)
        elif add_p is not None:
            key = add_p + key
        if key not in wanted and KNOWN_BUFFERS.search(key):
            continue
        out[key] = value
    return out


def load_hf(model: Any, path_or_dir: str | os.PathLike[str], *, strict: bool = True) -> Any:
    """Load a Hugging Face checkpoint (``model.safetensors``, ``pytorch_model.bin``, sharded
    or not, or one such file) into ``model`` by name, without torch. Returns what
    ``load_state_dict`` returns (the missing and unexpected keys when ``strict=False``).

    >>> import tempfile, os, kiln
    >>> from kiln import nn, weights
    >>> src = nn.Sequential(nn.Linear(2, 2))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     weights.save_file({"model." + k: v for k, v in src.state_dict().items()}
    ...                       | {"model.position_ids": kiln.arange(4).numpy()},
    ...                       os.path.join(d, "model.safetensors"))
    ...     dst = nn.Sequential(nn.Linear(2, 2))
    ...     result = load_hf(dst, d)
    >>> result
    <All keys matched successfully>
    """
    from kiln.io import weights
    from kiln.nn.module import Module

    if not isinstance(model, Module):
        raise ArgumentError(f"load_hf: model must be a kiln.nn.Module, got "
                            f"{type(model).__name__}")
    checkpoint: dict[str, Any] = {}
    for f in checkpoint_files(path_or_dir):
        checkpoint.update(weights.load_file(f))
    keys = list(model.state_dict())
    return model.load_state_dict(hf_state_dict(keys, checkpoint), strict=strict)
