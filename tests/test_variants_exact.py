"""NF-ResNet and NF-RegNet variant configs against the paper's text and appendix D code, field by field.

Written to kill the mutants of nf_plugins/models/nf_resnet.py and nf_regnet.py (docs/mutation.md). The
config builders run at import, before mutmut switches a mutant on, so the tests call them again.
"""

import pytest
import timm
import torch

from nf_plugins.models import nf_regnet, nf_resnet
from nf_plugins.models.normfree import NormFreeNet


def test_regnet_b0_config_is_the_appendix_d_code():
    cfg = nf_regnet._regnet_cfg(nf_regnet.VARIANTS["nf_regnet_b0"])
    assert cfg == nf_regnet.model_cfgs["nf_regnet_b0"]
    # width pattern int(0.75 * (48, 104, 208, 440)); the stem has the first stage's width
    assert cfg.channels == (36, 78, 156, 330) and cfg.stem_chs == 36 and cfg.stem_type == "3x3"
    assert cfg.depths == (1, 3, 6, 6) and cfg.stage_strides == (2, 2, 2, 2)
    # expansion g = 2.25 of the input width, g = 1 for the very first block, group width 8, SE ratio 0.5
    assert (cfg.bottle_ratio, cfg.bottle_from, cfg.first_block_ratio) == (2.25, "in", 1.0)
    assert (cfg.group_size, cfg.se_ratio, cfg.shortcut_pool) == (8, 0.5, True)
    assert cfg.num_features == 960  # int(1280 * 330 // 440): 1280 w channels before the classifier
    assert (cfg.act, cfg.alpha, cfg.drop_rate) == ("silu", 0.2, 0.2)
    assert cfg.conv_type == "scaled_ws" and cfg.fold_scalars
    b5 = nf_regnet._regnet_cfg(nf_regnet.VARIANTS["nf_regnet_b5"])
    assert b5.channels == (60, 126, 252, 528) and b5.num_features == 1536 and b5.drop_rate == 0.4
    b2 = nf_regnet._regnet_cfg(nf_regnet.VARIANTS["nf_regnet_b2"])
    assert b2.channels[-1] == 366 and b2.num_features == 1064  # int(1280 * 366 // 440), not 1064.7


def test_resnet_configs_are_the_preactivation_bottleneck_resnets():
    cfg = nf_resnet._resnet_cfg((3, 4, 6, 3))
    assert cfg == nf_resnet.model_cfgs["nf_resnet50"]
    assert cfg.depths == (3, 4, 6, 3) and cfg.channels == (256, 512, 1024, 2048)
    assert (cfg.stem_type, cfg.stem_chs, cfg.stage_strides) == ("7x7_pool", 64, (1, 2, 2, 2))
    assert (cfg.bottle_ratio, cfg.bottle_from, cfg.first_block_ratio, cfg.group_size) == (
        0.25,
        "out",
        None,
        None,
    )
    assert (cfg.se_ratio, cfg.shortcut_pool, cfg.num_features) == (None, False, None)
    assert (cfg.act, cfg.alpha, cfg.drop_rate, cfg.conv_type) == ("relu", 0.2, 0.0, "scaled_ws")
    assert nf_resnet.model_cfgs["nf_resnet288"].depths == (24, 24, 24, 24)
    assert cfg.fold_scalars and cfg.num_features is None


@pytest.mark.parametrize("name", ["nf_resnet26", "nf_regnet_b0"])
def test_registered_builders_pass_their_config_and_arguments(name):
    module = nf_resnet if name.startswith("nf_resnet") else nf_regnet
    with torch.device("meta"):
        model = timm.create_model(name, num_classes=3, drop_path_rate=0.1)
    assert isinstance(model, NormFreeNet) and model.cfg is module.model_cfgs[name]
    assert model.num_classes == 3 and model.stages[-1][-1].drop_path_rate > 0
    with pytest.raises(ValueError, match="no pretrained weights are published"):
        timm.create_model(name, pretrained=True)
