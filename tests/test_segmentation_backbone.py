"""NFBackbone: timm models as mmseg backbones at output stride 16 (paper appendix H)."""

import subprocess
import sys

import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

pytest.importorskip("mmseg")
from nf_plugins.downstream import NFBackbone  # noqa: E402


def _last_stage_3x3(backbone: NFBackbone) -> list[nn.Conv2d]:
    return [
        m for m in backbone.model.stages[-1].modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
    ]


@pytest.mark.parametrize("name", ["nf_resnet26", "nf_regnet_b0", "resnetv2_50"])
def test_output_stride_16_dilates_every_last_stage_3x3(name):
    bb = NFBackbone(name, out_indices=(0, 1, 2, 3, 4)).eval()
    with torch.no_grad():
        feats = bb(torch.randn(1, 3, 64, 64))
    # stem /2, stages /4 /8 /16 and the last stage stays at /16
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 4]
    assert [f.shape[1] for f in feats] == bb.out_channels
    convs = _last_stage_3x3(bb)
    assert convs and all(c.stride == (1, 1) and c.dilation == (2, 2) and c.padding == (2, 2) for c in convs)
    earlier = [m for s in bb.model.stages[:-1] for m in s.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.dilation == (1, 1) for c in earlier)


def test_checkpoint_loads_strictly_and_matches_timm_features(tmp_path):
    ref = timm.create_model("nf_resnet26").eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # make skip gains non-zero so every block matters
    ckpt = tmp_path / "nf_resnet26.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(ckpt))
    bb = NFBackbone("nf_resnet26", checkpoint_path=str(ckpt), output_stride=32).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(bb(x)[-1], ref.forward_features(x))
    # at OS16 the network is the same one with a dilated last stage: same weights, 2x finer map
    bb16 = NFBackbone("nf_resnet26", checkpoint_path=str(ckpt)).eval()
    with torch.no_grad():
        assert bb16(x)[-1].shape[-2:] == (4, 4) and not torch.allclose(bb16(x)[-1][..., ::2, ::2], bb(x)[-1])


def test_checkpoint_of_another_model_is_rejected(tmp_path):
    ckpt = tmp_path / "rn.safetensors"
    save_file(timm.create_model("nf_regnet_b0").state_dict(), str(ckpt))
    with pytest.raises(RuntimeError, match="model.backbone.checkpoint_path=.*does not fit nf_resnet26"):
        NFBackbone("nf_resnet26", checkpoint_path=str(ckpt))


def test_bad_backbone_arguments_name_the_config_key(tmp_path):
    with pytest.raises(KeyError, match=r"model.backbone.model_name='nf_resnet5O'.*did you mean.*nf_resnet50"):
        NFBackbone("nf_resnet5O")
    with pytest.raises(FileNotFoundError, match="model.backbone.checkpoint_path="):
        NFBackbone("nf_resnet26", checkpoint_path=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="model.backbone.out_indices"):
        NFBackbone("nf_resnet26", out_indices=(5,))
    with pytest.raises(ValueError, match="model.backbone.*no pretrained weights"):
        NFBackbone("nf_resnet26", pretrained=True)


def test_import_nf_plugins_does_not_import_mmseg():
    code = (
        "import sys, nf_plugins; assert not [m for m in sys.modules if m.split('.')[0] in ('mmseg','mmcv')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
