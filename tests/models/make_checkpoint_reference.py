"""Compute tests/models/fixtures/checkpoint_reference.json with torch (run once, by hand).

``python tests/models/make_checkpoint_reference.py`` with torch installed and the wheels
of ``ported.WHEELS`` installed with ``--no-deps``:

- MTCNN and CREPE: the ported classes built with ``lib=torch`` (the published definitions),
  weights read by ``torch.load(weights_only=True)`` from the original files;
- Silero VAD: the port on ``silero_vad_16k.safetensors``, streamed chunk by chunk. The
  script first checks the port against the published TorchScript model
  (``silero_vad/data/silero_vad.jit``, ``model(chunk, 16000)`` keeping its own context and
  state): given that model's weights, the port gives its output chunk for chunk. (The
  wheel's safetensors file holds other weights than its TorchScript file, so the stored
  values come from the port on the safetensors weights.)

The tests then run the same source with ``lib=kiln`` on weights Kiln reads without torch.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import ported  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent / "fixtures" / "checkpoint_reference.json"


def _load(family: str, name: str) -> dict:
    root = ported.checkpoint_dir(family)
    assert root is not None, f"install {ported.WHEELS[family]} with --no-deps"
    if name.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(root / name)
    return torch.load(root / name, weights_only=True, map_location="cpu")


def _jit_weights(model) -> dict:
    """The TorchScript Silero model's weights under the port's names."""
    out = {"stft_conv.weight": model.stft.forward_basis_buffer}
    for i in range(4):
        conv = getattr(model.encoder, str(i)).reparam_conv
        out[f"conv{i + 1}.weight"], out[f"conv{i + 1}.bias"] = conv.weight, conv.bias
    for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        out[f"lstm_cell.{k}"] = getattr(model.decoder.rnn, k)
    final = getattr(model.decoder.decoder, "2")
    out["final_conv.weight"], out["final_conv.bias"] = final.weight, final.bias
    return {k: v.detach().clone() for k, v in out.items()}


def _round(a: np.ndarray) -> list:
    return np.round(a.astype(np.float64), 7).tolist()


def main() -> None:
    torch.set_num_threads(1)
    classes = ported.build(torch)
    ref: dict = {"torch": torch.__version__, "wheels": ported.WHEELS}
    inputs = ported.mtcnn_inputs()
    for net in ("pnet", "rnet", "onet"):
        model = classes[net[0].upper() + "Net"]()
        model.load_state_dict(_load("mtcnn", f"{net}.pt"))
        model.eval()
        with torch.no_grad():
            outs = model(torch.from_numpy(inputs[net]))
        ref[net] = [_round(o.numpy()) for o in outs]
    crepe = classes["Crepe"]()
    crepe.load_state_dict(_load("crepe", "tiny.pth"))
    crepe.eval()
    with torch.no_grad():
        ref["crepe"] = _round(crepe(torch.from_numpy(ported.crepe_frames())).numpy())
    audio = ported.vad_audio()
    vad = classes["SileroVAD"]()
    vad.eval()
    # The port is the published model: with the TorchScript model's own weights it gives
    # that model's output, chunk for chunk (its context and state handling included).
    root = ported.checkpoint_dir("silero")
    assert root is not None
    jit = torch.jit.load(str(root / "silero_vad.jit"), map_location="cpu").eval()
    vad.load_state_dict(_jit_weights(jit._model))
    with torch.no_grad():
        published = [float(jit(torch.from_numpy(audio[i:i + 512]), 16000))
                     for i in range(0, len(audio), 512)]
        ported_probs = ported.vad_stream(vad, torch, audio)
    assert np.allclose(published, ported_probs, atol=1e-5), (published, ported_probs)
    # the reference: the same port on the safetensors checkpoint (other weights than the
    # TorchScript file's in the same wheel)
    vad.load_state_dict(_load("silero", "silero_vad_16k.safetensors"))
    with torch.no_grad():
        ref["silero"] = [round(p, 7) for p in ported.vad_stream(vad, torch, audio)]
    OUT.write_text(json.dumps(ref) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
