"""ResNet-18/50 with torchvision-layout weights: outputs against values stored from torch
(tests/models/fixtures/resnet_reference.json, made once by the torchvision-layout twins in
benchmarks/torch_models.py from the NumPy-seeded weights of resnet_seeded.py), and a
checkpoint written by torch.save loaded without torch."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from resnet_seeded import seeded_input, seeded_state

import kiln
from kiln import models, weights

REFERENCE = json.loads((pathlib.Path(__file__).parent / "fixtures" / "resnet_reference.json")
                       .read_text())  # fmt: skip


def seeded(name: str) -> models.ResNet:
    net = getattr(models, name)(num_classes=10)
    state = seeded_state([(k, tuple(v.shape)) for k, v in net.state_dict().items()])
    net.load_state_dict(state)  # strict: every torchvision name is there
    return net.eval()


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_matches_stored_torch_values(name):
    net = seeded(name)
    with kiln.no_grad():
        out = net(kiln.from_numpy(seeded_input())).numpy()
    ref = np.array(REFERENCE[name])
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_resnet50_layout_is_torchvisions():
    net = models.resnet50()
    assert sum(p.numel() for p in net.parameters()) == 25557032  # torchvision's number
    assert tuple(net.layer2[0].conv2.weight.shape) == (128, 128, 3, 3)  # v1.5: stride here
    assert net.layer2[0].conv2.stride == (2, 2)


def test_resnet18_from_a_torch_save_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    from benchmarks import torch_models

    twin = torch_models.resnet18(num_classes=10).eval()
    torch.manual_seed(0)
    for m in twin.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    torch.save(twin.state_dict(), tmp_path / "resnet18.pth")
    net = models.resnet18(num_classes=10)
    net.load_state_dict(weights.load_file(tmp_path / "resnet18.pth"))
    x = seeded_input()
    with torch.no_grad():
        want = twin(torch.from_numpy(x)).numpy()
    with kiln.no_grad():
        got = net.eval()(kiln.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
