"""A PyTorch twin of ``kiln.models.SentenceEncoder``, the reference the demo and the
benchmarks put beside Kiln's numbers (imported only where torch is installed)."""

from __future__ import annotations

from typing import Any


def sentence_encoder(vocab_size: int = 30522, hidden: int = 384, layers: int = 6,
                     heads: int = 12, intermediate: int = 1536, max_positions: int = 512,
                     type_vocab: int = 2, eps: float = 1e-12) -> Any:
    """``kiln.models.SentenceEncoder``: Hugging Face ``BertModel`` (eval mode, the names of
    its state dict under ``bert.``), mean pooling and L2 normalization, in torch.nn. Checked
    once against transformers' ``BertModel`` on all-MiniLM-L6-v2 (same numbers to 1e-6)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def dense(a: int, b: int) -> Any:
        return nn.Linear(a, b)

    class Box(nn.Module):  # a named container, as Hugging Face nests its modules
        pass

    def layer() -> Any:
        m = Box()
        m.attention = Box()
        m.attention.self = Box()
        for name in ("query", "key", "value"):
            setattr(m.attention.self, name, dense(hidden, hidden))
        m.attention.output = Box()
        m.attention.output.dense = dense(hidden, hidden)
        m.attention.output.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        m.intermediate = Box()
        m.intermediate.dense = dense(hidden, intermediate)
        m.output = Box()
        m.output.dense = dense(intermediate, hidden)
        m.output.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        return m

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = Box()
            e = self.bert.embeddings = Box()
            e.word_embeddings = nn.Embedding(vocab_size, hidden)
            e.position_embeddings = nn.Embedding(max_positions, hidden)
            e.token_type_embeddings = nn.Embedding(type_vocab, hidden)
            e.LayerNorm = nn.LayerNorm(hidden, eps=eps)
            self.bert.encoder = Box()
            self.bert.encoder.layer = nn.ModuleList([layer() for _ in range(layers)])
            self.bert.pooler = Box()
            self.bert.pooler.dense = dense(hidden, hidden)

        def forward(self, ids: Any, mask: Any) -> Any:
            e, b, s = self.bert.embeddings, ids.shape[0], ids.shape[1]
            x = (e.word_embeddings(ids) + e.position_embeddings.weight[:s]
                 + e.token_type_embeddings.weight[0])
            x = e.LayerNorm(x)
            bias = (1.0 - mask.to(x.dtype))[:, None, None, :] * torch.finfo(x.dtype).min
            d = hidden // heads
            for m in self.bert.encoder.layer:
                a = m.attention.self
                q, k, v = (f(x).view(b, s, heads, d).transpose(1, 2)
                           for f in (a.query, a.key, a.value))
                p = torch.softmax(q @ k.transpose(-1, -2) / d**0.5 + bias, dim=-1)
                ctx = (p @ v).transpose(1, 2).reshape(b, s, hidden)
                h = m.attention.output.LayerNorm(m.attention.output.dense(ctx) + x)
                x = m.output.LayerNorm(m.output.dense(F.gelu(m.intermediate.dense(h))) + h)
            w = mask.to(x.dtype).unsqueeze(-1)
            return F.normalize((x * w).sum(1) / w.sum(1).clamp(min=1e-9), dim=1)

    return Encoder()
