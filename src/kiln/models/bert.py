"""A BERT encoder with the module names of Hugging Face's ``BertModel``, and a sentence
encoder (mean pooling + L2 normalization, as sentence-transformers' all-MiniLM-L6-v2).

The names match ``transformers.BertModel`` (``embeddings.word_embeddings``,
``encoder.layer.0.attention.self.query``, ...), so a Hugging Face checkpoint loads by name
with :func:`kiln.nn.utils.load_hf`; :meth:`SentenceEncoder.from_pretrained` reads a
sentence-transformers model folder (``config.json``, ``model.safetensors`` or
``pytorch_model.bin``, ``vocab.txt``) without torch.

The math follows ``BertModel`` in eval mode: the sum of word, position and token-type
embeddings, LayerNorm; per layer, multi-head self-attention (scores scaled by
1/sqrt(head size), padded keys masked with the float32 minimum), a residual and a LayerNorm,
then a GELU (erf) MLP, a residual and a LayerNorm.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

import kiln.nn.functional as F
from kiln import nn
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, SerializationError

_FLOAT32_MIN = float(np.finfo(np.float32).min)


@dataclass(frozen=True)
class BertConfig:
    """The fields of a Hugging Face ``config.json`` that the encoder uses (defaults: MiniLM-L6).

    >>> BertConfig(hidden_size=64, num_attention_heads=4).head_size
    16
    """

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (type(value) is not int or value < 1):
                raise ArgumentError(f"BertConfig: {f.name} must be an int >= 1, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ArgumentError(f"BertConfig: hidden_size {self.hidden_size} is not a multiple "
                                f"of num_attention_heads {self.num_attention_heads}")
        if self.hidden_act not in ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu"):
            raise ArgumentError(f"BertConfig: hidden_act must be gelu, gelu_new, "
                                f"gelu_pytorch_tanh or relu, got {self.hidden_act!r}")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> BertConfig:
        """Read a Hugging Face ``config.json``; unknown keys are ignored."""
        try:
            data = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
        except ValueError as e:
            raise SerializationError(f"{os.fspath(path)}: not JSON: {e}") from None
        if not isinstance(data, dict):
            raise SerializationError(f"{os.fspath(path)}: expected a JSON object")
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def _activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    return nn.GELU(approximate="none" if name == "gelu" else "tanh")


class BertEmbeddings(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings,
                                                config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.max_positions = config.max_position_embeddings

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        seq = input_ids.shape[1]
        if isinstance(seq, int) and seq > self.max_positions:
            raise ArgumentError(f"BertEmbeddings: input_ids has {seq} tokens per row, more than "
                                f"the {self.max_positions} positions of the model")
        x = self.word_embeddings(input_ids) + self.position_embeddings.weight[:seq]
        if token_type_ids is None:
            x = x + self.token_type_embeddings.weight[0]
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        return self.LayerNorm(x)


class BertSelfAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.heads, self.head_size = config.num_attention_heads, config.head_size
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: Tensor, mask_bias: Tensor | float) -> Tensor:
        b, s, d = x.shape

        def heads(t: Tensor) -> Tensor:  # (b, s, d) -> (b, heads, s, head_size)
            return t.reshape(b, s, self.heads, self.head_size).permute(0, 2, 1, 3)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_size)) + mask_bias
        context = F.softmax(scores, dim=-1) @ v
        return context.permute(0, 2, 1, 3).reshape(b, s, d)


class BertResidualOutput(nn.Module):
    """``LayerNorm(dense(x) + residual)``: the ``output`` of an attention block and of a layer
    (Hugging Face's BertSelfOutput and BertOutput, which differ only in ``dense``'s input)."""

    def __init__(self, in_features: int, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertResidualOutput(config.hidden_size, config)

    def forward(self, x: Tensor, mask_bias: Tensor | float) -> Tensor:
        return self.output(self.self(x, mask_bias), x)


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = _activation(config.hidden_act)

    def forward(self, x: Tensor) -> Tensor:
        return self.intermediate_act_fn(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertResidualOutput(config.intermediate_size, config)

    def forward(self, x: Tensor, mask_bias: Tensor | float) -> Tensor:
        a = self.attention(x, mask_bias)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, x: Tensor, mask_bias: Tensor | float) -> Tensor:
        for layer in self.layer:
            x = layer(x, mask_bias)
        return x


class BertPooler(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden: Tensor) -> Tensor:
        return self.activation(self.dense(hidden[:, 0]))


class BertModel(nn.Module):
    """The BERT encoder: ``(input_ids, attention_mask, token_type_ids)`` -> the last hidden
    state (batch, seq, hidden). ``pooler`` (tanh of a dense layer on the first token) is there
    so checkpoints that carry it load strictly; :meth:`forward` does not use it.

    >>> import kiln
    >>> from kiln.models import BertConfig, BertModel
    >>> cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
    ...                  num_attention_heads=2, intermediate_size=32)
    >>> BertModel(cfg)(kiln.tensor([[2, 7, 3]])).shape
    (1, 3, 16)
    """

    def __init__(self, config: BertConfig | None = None, add_pooling_layer: bool = True) -> None:
        super().__init__()
        self.config = config or BertConfig()
        self.embeddings = BertEmbeddings(self.config)
        self.encoder = BertEncoder(self.config)
        self.pooler = BertPooler(self.config) if add_pooling_layer else None

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None) -> Tensor:
        x = self.embeddings(input_ids, token_type_ids)
        mask_bias: Tensor | float = 0.0
        if attention_mask is not None:
            # (batch, seq) of 1/0 -> an additive bias on the keys, as BertModel builds it.
            keep = attention_mask.to(x.dtype)[:, None, None, :]
            mask_bias = (1.0 - keep) * _FLOAT32_MIN
        return self.encoder(x, mask_bias)


def mean_pool(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """The mean of the hidden states of the tokens the mask keeps (sentence-transformers'
    ``Pooling(pooling_mode_mean_tokens=True)``)."""
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


class SentenceEncoder(nn.Module):
    """Sentence embeddings: BERT, mean pooling over the real tokens, L2 normalization.

    ``forward(input_ids, attention_mask)`` -> (batch, hidden) unit vectors; :meth:`encode`
    tokenizes strings first. :meth:`from_pretrained` loads a sentence-transformers folder.

    >>> import kiln
    >>> from kiln.models import BertConfig, SentenceEncoder
    >>> cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
    ...                  num_attention_heads=2, intermediate_size=32)
    >>> emb = SentenceEncoder(cfg)(kiln.tensor([[2, 7, 3, 0]]), kiln.tensor([[1, 1, 1, 0]]))
    >>> emb.shape, round(float(emb.square().sum()), 4)
    ((1, 16), 1.0)
    """

    def __init__(self, config: BertConfig | None = None, tokenizer: Any = None,
                 max_seq_length: int = 256) -> None:
        super().__init__()
        self.bert = BertModel(config)
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        hidden = self.bert(input_ids, attention_mask)
        return F.normalize(mean_pool(hidden, attention_mask), p=2.0, dim=1)

    def tokenize(self, sentences: list[str]) -> tuple[Tensor, Tensor]:
        """``(input_ids, attention_mask)`` int64 tensors, padded to the longest sentence."""
        if self.tokenizer is None:
            raise ArgumentError("SentenceEncoder.tokenize: this encoder has no tokenizer "
                                "(load one with SentenceEncoder.from_pretrained)")
        from kiln.core.creation import tensor

        ids, mask = self.tokenizer.batch(sentences, max_length=self.max_seq_length)
        return tensor(ids), tensor(mask)

    def encode(self, sentences: list[str], fn: Any = None) -> np.ndarray:
        """Embed ``sentences``: a (len(sentences), hidden) float32 array of unit vectors.

        ``fn`` runs the model instead of ``self`` (for example ``kiln.compile(encoder,
        backend="c")``)."""
        from kiln.autograd import no_grad

        ids, mask = self.tokenize(sentences)
        with no_grad():
            out = (fn or self)(ids, mask)
        return out.detach().numpy()

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str]) -> SentenceEncoder:
        """A sentence-transformers model folder (``config.json``, ``model.safetensors`` or
        ``pytorch_model.bin``, ``vocab.txt``, ``sentence_bert_config.json``), read without
        torch. Weights load strictly (``position_ids`` and other known buffers skipped)."""
        from kiln.models.wordpiece import WordPieceTokenizer
        from kiln.nn.utils import load_hf

        root = pathlib.Path(path)
        if not (root / "config.json").is_file():
            raise ArgumentError(f"SentenceEncoder.from_pretrained: {os.fspath(root)!r} has no "
                                "config.json (expected a sentence-transformers model folder)")
        config = BertConfig.from_json(root / "config.json")
        max_len = config.max_position_embeddings
        st_config = root / "sentence_bert_config.json"
        if st_config.is_file():
            max_len = int(json.loads(st_config.read_text(encoding="utf-8"))
                          .get("max_seq_length", max_len))
        tokenizer = WordPieceTokenizer.from_pretrained(root)
        max_len = min(max_len, config.max_position_embeddings)
        model = cls(config, tokenizer=tokenizer, max_seq_length=max_len)
        load_hf(model.bert, root)
        return model.eval()
