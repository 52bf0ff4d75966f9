"""The model families of issue 12, written once against the torch API and run with only the
import changed: MTCNN's three nets (P-Net, R-Net, O-Net as facenet-pytorch writes them),
CREPE-tiny (torchcrepe's published architecture with its framing and normalization), a
Silero-style VAD (an STFT as a Conv1d over a fixed basis, conv encoder blocks, an LSTM cell
decoder with carried state) and two training scripts (a CNN classifier fed by a DataLoader
and a GRU sequence model).

Each model is built with ``lib=torch`` and ``lib=kiln``, torch's state dict is loaded into
Kiln's, and the outputs are compared in eager mode, traced and compiled with the C backend;
the training scripts compare loss curves step by step (same init, same data order).
"""

from __future__ import annotations

import numpy as np
import pytest
from every_mode import assert_matches_torch_in_every_mode

import kiln

pytestmark = pytest.mark.torch


def build(lib):
    """The model classes, written with ``lib`` = torch or kiln."""
    nn, F = lib.nn, lib.nn.functional

    class PNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 10, kernel_size=3), nn.PReLU(10)
            self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(10, 16, kernel_size=3), nn.PReLU(16)
            self.conv3, self.prelu3 = nn.Conv2d(16, 32, kernel_size=3), nn.PReLU(32)
            self.conv4_1, self.softmax4_1 = nn.Conv2d(32, 2, kernel_size=1), nn.Softmax(dim=1)
            self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
            a = self.softmax4_1(self.conv4_1(x))
            return self.conv4_2(x), a

    class RNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 28, kernel_size=3), nn.PReLU(28)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(28, 48, kernel_size=3), nn.PReLU(48)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3, self.prelu3 = nn.Conv2d(48, 64, kernel_size=2), nn.PReLU(64)
            self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
            self.dense5_1, self.softmax5_1 = nn.Linear(128, 2), nn.Softmax(dim=1)
            self.dense5_2 = nn.Linear(128, 4)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.prelu3(self.conv3(x))
            x = x.permute(0, 3, 2, 1).contiguous()
            x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
            return self.dense5_2(x), self.softmax5_1(self.dense5_1(x))

    class ONet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 32, kernel_size=3), nn.PReLU(32)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(32, 64, kernel_size=3), nn.PReLU(64)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3, self.prelu3 = nn.Conv2d(64, 64, kernel_size=3), nn.PReLU(64)
            self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv4, self.prelu4 = nn.Conv2d(64, 128, kernel_size=2), nn.PReLU(128)
            self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
            self.dense6_1, self.softmax6_1 = nn.Linear(256, 2), nn.Softmax(dim=1)
            self.dense6_2, self.dense6_3 = nn.Linear(256, 4), nn.Linear(256, 10)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.pool3(self.prelu3(self.conv3(x)))
            x = self.prelu4(self.conv4(x))
            x = x.permute(0, 3, 2, 1).contiguous()
            x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
            a = self.softmax6_1(self.dense6_1(x))
            return self.dense6_2(x), self.dense6_3(x), a

    class Crepe(nn.Module):
        """torchcrepe's Crepe("tiny"), with its preprocessing (framing, normalization)."""

        def __init__(self):
            super().__init__()
            out_channels = [128, 16, 16, 16, 32, 64]
            in_channels = [1] + out_channels[:-1]
            self.in_features = 256
            self.hop = 512
            for i in range(6):
                conv = nn.Conv2d(in_channels[i], out_channels[i],
                                 kernel_size=(512, 1) if i == 0 else (64, 1),
                                 stride=(4, 1) if i == 0 else (1, 1))
                setattr(self, f"conv{i + 1}", conv)
                setattr(self, f"conv{i + 1}_BN", nn.BatchNorm2d(
                    out_channels[i], eps=0.0010000000474974513, momentum=0.0))
            self.pool = nn.MaxPool2d((2, 1), (2, 1))
            self.dropout = nn.Dropout(0.25)
            self.classifier = nn.Linear(self.in_features, 360)

        def frames(self, audio):
            audio = F.pad(audio, (512, 512))
            frames = audio.unfold(1, 1024, self.hop).reshape(-1, 1024)
            frames = frames - frames.mean(dim=1, keepdim=True)
            return frames / lib.clamp(frames.std(dim=1, keepdim=True), min=1e-10)

        def forward(self, audio):
            x = self.frames(audio)[:, None, :, None]
            for i in range(6):
                padding = (0, 0, 254, 254) if i == 0 else (0, 0, 31, 32)
                conv, bn = getattr(self, f"conv{i + 1}"), getattr(self, f"conv{i + 1}_BN")
                x = self.dropout(self.pool(bn(F.relu(conv(F.pad(x, padding))))))
            x = x.permute(0, 2, 1, 3).reshape(-1, self.in_features)
            return lib.sigmoid(self.classifier(x))

    class VAD(nn.Module):
        """Silero VAD v5's structure at a small size: chunk + carried context, reflect pad,
        an STFT as a strided Conv1d over a fixed basis, conv blocks, an LSTMCell decoder."""

        def __init__(self, n_fft=64, hop=32, context=16):
            super().__init__()
            self.n_fft, self.hop, self.context = n_fft, hop, context
            eye = np.fft.fft(np.eye(n_fft))[: n_fft // 2 + 1]
            window = np.hanning(n_fft + 1)[:-1]
            basis = np.concatenate([eye.real, eye.imag]) * window
            self.register_buffer("forward_basis_buffer",
                                 lib.tensor(basis[:, None, :].astype(np.float32)))
            bins = n_fft // 2 + 1
            self.encoder = nn.Sequential(
                nn.Conv1d(bins, 32, 3, padding=1), nn.ReLU(),
                nn.Conv1d(32, 16, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv1d(16, 16, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv1d(16, 32, 3, padding=1), nn.ReLU())
            self.rnn = nn.LSTMCell(32, 32)
            self.decoder = nn.Sequential(nn.Dropout(0.1), nn.ReLU(), nn.Conv1d(32, 1, 1),
                                         nn.Sigmoid())

        def stft(self, x):
            x = F.pad(x, (0, self.hop // 2), mode="reflect")
            ft = F.conv1d(x.unsqueeze(1), self.forward_basis_buffer, stride=self.hop)
            cutoff = self.n_fft // 2 + 1
            real, imag = ft[:, :cutoff, :], ft[:, cutoff:, :]
            return lib.sqrt(real ** 2 + imag ** 2)

        def forward(self, x, state, context):
            x = lib.cat([context, x], dim=1)
            feats = self.encoder(self.stft(x)).mean(dim=-1)
            h, c = self.rnn(feats, (state[0], state[1]))
            out = self.decoder(h.unsqueeze(-1)).squeeze(1).mean(dim=1)
            return out, lib.stack([h, c]), x[:, -self.context:]

    return {"pnet": PNet, "rnet": RNet, "onet": ONet, "crepe": Crepe, "vad": VAD}


INPUTS = {
    "pnet": lambda rng: [rng.standard_normal((2, 3, 17, 15))],
    "rnet": lambda rng: [rng.standard_normal((2, 3, 24, 24))],
    "onet": lambda rng: [rng.standard_normal((2, 3, 48, 48))],
    "crepe": lambda rng: [rng.standard_normal((2, 1536))],
    "vad": lambda rng: [rng.standard_normal((2, 128)), np.zeros((2, 2, 32)),
                        rng.standard_normal((2, 16))],
}


def _pair(torch, name):
    torch.manual_seed(0)
    tmodel = build(torch)[name]()
    for m in tmodel.modules():  # running statistics that are not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    kmodel = build(kiln)[name]()
    kmodel.load_state_dict(tmodel.state_dict())
    return tmodel.eval(), kmodel.eval()


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_model_family_matches_torch_in_every_mode(name):
    torch = pytest.importorskip("torch")
    tmodel, kmodel = _pair(torch, name)
    arrays = [a.astype(np.float32) for a in INPUTS[name](np.random.default_rng(0))]
    assert_matches_torch_in_every_mode(torch, tmodel, kmodel, arrays, name, atol=2e-5)


def test_vad_streams_state_and_context_like_torch():
    torch = pytest.importorskip("torch")
    tmodel, kmodel = _pair(torch, "vad")
    chunks = np.random.default_rng(1).standard_normal((4, 2, 128)).astype(np.float32)
    tstate, tctx = torch.zeros(2, 2, 32), torch.zeros(2, 16)
    kstate, kctx = kiln.zeros(2, 2, 32), kiln.zeros(2, 16)
    step = kiln.compile(kmodel, backend="c")
    with torch.no_grad(), kiln.no_grad():
        for chunk in chunks:
            tp, tstate, tctx = tmodel(torch.from_numpy(chunk), tstate, tctx)
            kp, kstate, kctx = step(kiln.tensor(chunk), kstate, kctx)
            np.testing.assert_allclose(kp.numpy(), tp.numpy(), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(kstate.numpy(), tstate.numpy(), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------
# training scripts


def classifier(lib):
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(36, 3))


def classifier_script(lib, model, images, labels, loader_kwargs, path):
    """A small CNN classifier: DataLoader over a TensorDataset, SGD with momentum, gradient
    norm clipping, a StepLR schedule, and the state dict saved and loaded into a fresh model.
    Returns the losses and the reloaded model's outputs on a few images."""
    nn, F, data = lib.nn, lib.nn.functional, lib.utils.data
    dataset = data.TensorDataset(lib.tensor(images), lib.tensor(labels))
    loader = data.DataLoader(dataset, batch_size=8, drop_last=True, **loader_kwargs)
    opt = lib.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    sched = lib.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    losses = []
    for _ in range(2):
        for x, y in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
    lib.save(model.state_dict(), path)
    fresh = classifier(lib)
    fresh.load_state_dict(lib.load(path))
    with lib.no_grad():
        return losses, fresh.eval()(dataset[:4][0]).numpy()


def regressor(lib):
    """A sequence regressor: a 2-layer GRU, a bidirectional LSTM, a linear head."""
    nn = lib.nn

    class Regressor(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(3, 8, num_layers=2, batch_first=True)
            self.lstm = nn.LSTM(8, 6, batch_first=True, bidirectional=True)
            self.head = nn.Linear(12, 1)

        def forward(self, x):
            h, _ = self.gru(x)
            h, (hn, cn) = self.lstm(h)
            # (the final states join the loss too, so their gradients are compared)
            return self.head(h[:, -1]).squeeze(-1) + 0.01 * (hn.mean() + cn.mean())

    return Regressor()


def sequence_script(lib, model, seqs, targets, loader_kwargs):
    """Adam, gradient value clipping, an exponential LR schedule per pass. Returns the
    losses."""
    nn, F, data = lib.nn, lib.nn.functional, lib.utils.data
    dataset = data.TensorDataset(lib.tensor(seqs), lib.tensor(targets))
    loader = data.DataLoader(dataset, batch_size=6, drop_last=True, **loader_kwargs)
    opt = lib.optim.Adam(model.parameters(), lr=0.01)
    sched = lib.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
    losses = []
    for _ in range(2):
        for x, y in loader:
            opt.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            nn.utils.clip_grad_value_(model.parameters(), 0.5)
            opt.step()
            losses.append(loss.item())
        sched.step()
    return losses


class _Replay:
    """A torch sampler replaying Kiln's shuffled orders (one per pass), so both scripts see
    the same data order; Kiln's DataLoader draws them from its own Generator."""

    def __init__(self, orders):
        self.orders = iter(orders)

    def __iter__(self):
        return iter(next(self.orders))

    def __len__(self):
        return 0


def _loader_kwargs(n, seed, passes=2):
    from kiln.utils.data import RandomSampler

    sampler = RandomSampler(range(n), generator=kiln.Generator().manual_seed(seed))
    orders = [list(sampler) for _ in range(passes)]
    return ({"shuffle": True, "generator": kiln.Generator().manual_seed(seed)},
            {"sampler": _Replay(orders)})


def test_classifier_script_matches_torch(tmp_path):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    images = rng.standard_normal((42, 1, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 3, 42)
    torch.manual_seed(0)
    tmodel, kmodel = classifier(torch), classifier(kiln)
    kmodel.load_state_dict(tmodel.state_dict())
    kw_kiln, kw_torch = _loader_kwargs(42, 5)
    want, want_out = classifier_script(torch, tmodel, images, labels, kw_torch,
                                       tmp_path / "t.pt")
    got, got_out = classifier_script(kiln, kmodel, images, labels, kw_kiln,
                                     tmp_path / "k.kiln")
    assert len(got) == len(want) == 10  # 42 samples, batches of 8, the last 2 dropped
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(got_out, want_out, rtol=1e-3, atol=1e-4)


def test_sequence_script_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    seqs = rng.standard_normal((20, 5, 3)).astype(np.float32)
    targets = seqs.sum(axis=(1, 2)).astype(np.float32) * 0.1
    torch.manual_seed(0)
    tmodel, kmodel = regressor(torch), regressor(kiln)
    kmodel.load_state_dict(tmodel.state_dict())
    kw_kiln, kw_torch = _loader_kwargs(20, 6)
    want = sequence_script(torch, tmodel, seqs, targets, kw_torch)
    got = sequence_script(kiln, kmodel, seqs, targets, kw_kiln)
    assert len(got) == len(want) == 6
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-5)
