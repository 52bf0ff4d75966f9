"""Models written once against the torch API run on torch and on Kiln with only the import
changed (issue 12): an MTCNN-style P-Net (PReLU, ceil-mode max pooling), a Silero-style
voice-activity model (strided Conv1d, a 2-layer LSTM with carried state), a decoder
(ConvTranspose2d, Upsample, interpolate) and a bidirectional GRU tagger. Each loads torch's
state dict and matches torch in eager mode, traced and compiled with the C backend."""

from __future__ import annotations

import numpy as np
import pytest
from every_mode import assert_matches_torch_in_every_mode

import kiln


def build(lib):
    """The model classes, written with ``lib`` = torch or kiln."""
    nn, F = lib.nn, lib.nn.functional

    class PNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
            self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
            self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
            self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
            return F.softmax(self.conv4_1(x), dim=1), self.conv4_2(x)

    class VAD(nn.Module):
        def __init__(self):
            super().__init__()
            self.stft = nn.Conv1d(1, 16, 8, stride=4, bias=False)
            self.rnn = nn.LSTM(16, 24, num_layers=2, batch_first=True)
            self.head = nn.Linear(24, 1)

        def forward(self, x, state=None):
            feats = F.relu(self.stft(x.unsqueeze(1))).transpose(1, 2)
            out, state = self.rnn(feats, state)
            return self.head(out).sigmoid().squeeze(-1), state

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.up1 = nn.ConvTranspose2d(8, 6, 4, stride=2, padding=1)
            self.act = nn.PReLU()
            self.up2 = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            self.conv = nn.Conv2d(6, 3, 3, padding=1)

        def forward(self, z):
            x = self.up2(self.act(self.up1(z)))
            x = F.interpolate(self.conv(x), size=(21, 19), mode="nearest")
            return x.tanh()

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(30, 12)
            self.gru = nn.GRU(12, 16, batch_first=True, bidirectional=True)
            self.out = nn.Linear(32, 5)

        def forward(self, ids):
            h, _ = self.gru(self.emb(ids))
            return F.log_softmax(self.out(h), dim=-1)

    return {"pnet": PNet, "vad": VAD, "decoder": Decoder, "tagger": Tagger}


INPUTS = {
    "pnet": lambda rng: [rng.standard_normal((2, 3, 15, 17)).astype(np.float32)],
    "vad": lambda rng: [rng.standard_normal((2, 64)).astype(np.float32)],
    "decoder": lambda rng: [rng.standard_normal((2, 8, 5, 4)).astype(np.float32)],
    "tagger": lambda rng: [rng.integers(0, 30, (3, 7))],
}


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(INPUTS))
def test_ported_model_matches_torch_in_every_mode(name):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tmodel = build(torch)[name]().eval()
    kmodel = build(kiln)[name]().eval()
    kmodel.load_state_dict(tmodel.state_dict())
    arrays = INPUTS[name](np.random.default_rng(0))
    assert_matches_torch_in_every_mode(torch, tmodel, kmodel, arrays, name)


@pytest.mark.torch
def test_vad_streams_its_state_like_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    tmodel = build(torch)["vad"]().eval()
    kmodel = build(kiln)["vad"]().eval()
    kmodel.load_state_dict(tmodel.state_dict())
    chunks = np.random.default_rng(1).standard_normal((3, 1, 64)).astype(np.float32)
    tstate = kstate = None
    step = kiln.compile(lambda x, h, c: kmodel(x, (h, c)), backend="c")
    with torch.no_grad(), kiln.no_grad():
        for chunk in chunks:
            tp, tstate = tmodel(torch.from_numpy(chunk), tstate)
            if kstate is None:
                kp, kstate = kmodel(kiln.tensor(chunk))
            else:
                kp, kstate = step(kiln.tensor(chunk), *kstate)
            np.testing.assert_allclose(kp.numpy(), tp.numpy(), rtol=1e-4, atol=1e-5)
