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


# Table 3 of the paper (FLOPs, params) and appendix D's test_imsize, typed in from the paper.
TABLE3_DOCS = {
    "nf_regnet_b0": "NF-RegNet-B0: 8.6M params, 0.44B MACs at 224 px (paper Table 3).",
    "nf_regnet_b1": "NF-RegNet-B1: 10.0M params, 0.73B MACs at 256 px (paper Table 3).",
    "nf_regnet_b2": "NF-RegNet-B2: 13.8M params, 1.10B MACs at 272 px (paper Table 3).",
    "nf_regnet_b3": "NF-RegNet-B3: 18.1M params, 2.00B MACs at 320 px (paper Table 3).",
    "nf_regnet_b4": "NF-RegNet-B4: 29.3M params, 4.47B MACs at 384 px (paper Table 3).",
    "nf_regnet_b5": "NF-RegNet-B5: 48.7M params, 10.56B MACs at 456 px (paper Table 3).",
}


@pytest.mark.parametrize("name", sorted(TABLE3_DOCS))
def test_regnet_entrypoint_docstring_states_its_table3_row(name):
    # The decorator ran at import, before mutmut switches a mutant on: apply it again to a fresh function.
    def fn():
        pass

    fn.__name__ = name
    assert nf_regnet._table3_doc(fn) is fn
    assert fn.__doc__ == TABLE3_DOCS[name]


# The ResNet stage depths (He et al. 2016; 26 and 288 as in the paper's Table 1 nets).
RESNET_DOCS = {
    "nf_resnet26": "NF-ResNet-26, depths (2, 2, 2, 2).",
    "nf_resnet50": "NF-ResNet-50, depths (3, 4, 6, 3).",
    "nf_resnet101": "NF-ResNet-101, depths (3, 4, 23, 3).",
    "nf_resnet152": "NF-ResNet-152, depths (3, 8, 36, 3).",
    "nf_resnet200": "NF-ResNet-200, depths (3, 24, 36, 3).",
    "nf_resnet288": "NF-ResNet-288, depths (24, 24, 24, 24).",
}


@pytest.mark.parametrize("name", sorted(RESNET_DOCS))
def test_resnet_entrypoint_docstring_states_its_depths(name):
    def fn():
        pass

    fn.__name__ = name
    assert nf_resnet._depths_doc(fn) is fn
    assert fn.__doc__ == RESNET_DOCS[name]


def test_drop_rate_stays_the_models_own_argument_not_a_cfg_override():
    from nf_plugins.models.normfree import pop_overrides

    kwargs = {"drop_rate": 0.5, "alpha": 0.3, "num_classes": 7}
    cfg = pop_overrides(nf_resnet.model_cfgs["nf_resnet26"], kwargs)
    assert kwargs == {"drop_rate": 0.5, "num_classes": 7}
    assert (cfg.alpha, cfg.drop_rate) == (0.3, 0.0)
    # drop_rate=None is the model's "variant default" (B0: 0.2, appendix D), not an invalid cfg value
    model = timm.create_model("nf_regnet_b0", drop_rate=None, num_classes=0)
    assert model.drop_rate == 0.2 and model.cfg.drop_rate == 0.2


_ACCEPTS = (
    "; it accepts num_classes, in_chans, global_pool, output_stride (8, 16 or 32), drop_rate, "
    "drop_path_rate (and timm's features_only, out_indices, pretrained, pretrained_cfg), and overrides of "
    "the NfCfg fields depths, channels, stem_type, stem_chs, stage_strides, bottle_ratio, bottle_from, "
    "first_block_ratio, group_size, se_ratio, se_gain, shortcut_pool, num_features, act, act_gamma, alpha, "
    "skipinit_gain, conv_type, he_init_nonlinearity, fold_scalars"
)


@pytest.mark.parametrize(
    ("typo", "hint"),
    [
        ("num_clases", "did you mean 'num_classes', 'num_features'?"),
        ("in_chan", "did you mean 'in_chans'?"),
        ("global_pol", "did you mean 'global_pool'?"),
        ("output_strid", "did you mean 'output_stride'?"),
        ("drop_path_rat", "did you mean 'drop_path_rate', 'drop_rate'?"),
        ("zzzz", None),
    ],
)
def test_unknown_model_argument_names_the_closest_own_arguments(typo, hint):
    with pytest.raises(TypeError) as info:
        NormFreeNet(nf_resnet.model_cfgs["nf_resnet26"], **{typo: 1})
    expected = (
        f"NormFreeNet got unexpected keyword arguments ['{typo}']" + _ACCEPTS + (f"; {hint}" if hint else "")
    )
    assert str(info.value) == expected
