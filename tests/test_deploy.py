"""Folded Scaled WS and ONNX export: onnxruntime matches PyTorch."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import timm
import torch

from nf_plugins.deploy import export_onnx, fold_scaled_ws
from nf_plugins.layers import ScaledStdConv2d
from nf_plugins.models import NormFreeBlock


def _random_model(name: str) -> torch.nn.Module:
    model = timm.create_model(name, num_classes=10)
    for m in model.modules():
        if isinstance(m, NormFreeBlock):
            m.skipinit_gain.data.uniform_(0.5, 1.5)
    torch.nn.init.normal_(model.get_classifier().weight, std=0.1)
    return model.eval()


def test_fold_scaled_ws_replaces_every_conv_and_keeps_outputs():
    model = _random_model("nf_regnet_b0")
    folded = fold_scaled_ws(model)
    assert not any(isinstance(m, ScaledStdConv2d) for m in folded.modules())
    assert any(isinstance(m, ScaledStdConv2d) for m in model.modules())  # the original is untouched
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["nf_resnet26", "nf_regnet_b0"])
def test_onnx_export_matches_pytorch(name, tmp_path):
    model = _random_model(name)
    path = export_onnx(model, tmp_path / f"{name}.onnx", input_size=(3, 96, 96))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "Conv" in ops and not ops & {"Sqrt", "Rsqrt", "Reciprocal"}  # no weight standardization left
    for shape in [(1, 3, 96, 96), (3, 3, 128, 112)]:  # dynamic batch and size
        x = torch.randn(*shape)
        with torch.no_grad():
            ref = model(x).numpy()
        out = session.run(None, {"input": x.numpy()})[0]
        assert np.abs(out - ref).max() <= 1e-4
    # the graph does not check the input size (16 px runs in onnxruntime, PyTorch refuses it), so the
    # file states the contract; its value is PyTorch's own limit: 32 px runs, 31 px is refused
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["min_input_size"] == "32" and "H and W >= 32" in meta["input_contract"]
    assert session.run(None, {"input": np.zeros((1, 3, 16, 16), np.float32)})[0].shape == (1, 10)
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
        with pytest.raises(ValueError, match="31x31 is too small"):
            model(torch.zeros(1, 3, 31, 31))


def test_export_rejects_bad_path(tmp_path):
    with pytest.raises(ValueError, match="must end in .onnx"):
        export_onnx(_random_model("nf_regnet_b0"), tmp_path / "model.bin")
