"""SPP statistics helpers (nf_plugins.spp.stats) against numpy and hand-written expectations.

Written to kill the mutants that test_spp.py leaves alive (docs/mutation.md): the reduction axes and
ddof of the channel statistics, the probe's seed/dtype/shape, the JSON keys, the BN mode switch.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

from nf_plugins.spp.stats import (
    BlockStats,
    SppResult,
    _check_finite,
    _model_in_chans,
    batch_statistics_mode,
    channel_stats,
    gaussian_input,
)


def test_channel_stats_reduce_every_axis_but_channels_with_population_variance():
    gen = torch.Generator().manual_seed(1)
    # Distinct per-channel means and a non-square shape, so any wrong axis or ddof changes the numbers.
    y = torch.randn(3, 4, 5, 2, generator=gen) * torch.arange(1.0, 5.0).view(1, 4, 1, 1) + torch.arange(
        4.0
    ).view(1, 4, 1, 1)
    a = y.numpy().astype(np.float64)
    sq_mean, var = channel_stats(y)
    assert sq_mean == pytest.approx(np.mean(np.mean(a, axis=(0, 2, 3)) ** 2), rel=1e-12)
    assert var == pytest.approx(np.mean(np.var(a, axis=(0, 2, 3))), rel=1e-12)
    # (N, C): the batch axis only. A 1-D tensor has no channel axis.
    m = torch.tensor([[1.0, 4.0], [3.0, 8.0]])
    assert channel_stats(m) == pytest.approx(((2.0**2 + 6.0**2) / 2, (1.0 + 4.0) / 2))
    with pytest.raises(ValueError, match=r"^expected an \(N, C, \.\.\.\) activation, got shape \(4,\)$"):
        channel_stats(torch.ones(4))


def test_result_json_schema_and_columns():
    blocks = [BlockStats(0, 0, False, 0.5, 1.0, 2.0), BlockStats(1, 0, True, 0.25, 1.5, 3.0)]
    result = SppResult("net", blocks)
    assert result.to_dict() == {
        "model": "net",
        "blocks": [
            {
                "index": 0,
                "stage": 0,
                "stage_end": False,
                "avg_channel_squared_mean": 0.5,
                "avg_channel_variance": 1.0,
                "residual_avg_channel_variance": 2.0,
            },
            {
                "index": 1,
                "stage": 0,
                "stage_end": True,
                "avg_channel_squared_mean": 0.25,
                "avg_channel_variance": 1.5,
                "residual_avg_channel_variance": 3.0,
            },
        ],
    }
    assert result.column("avg_channel_variance") == [1.0, 1.5]


def test_input_channels_from_attribute_then_pretrained_cfg_then_rgb():
    with_attr = nn.Identity()
    with_attr.in_chans = 5
    assert _model_in_chans(with_attr) == 5
    with_cfg = nn.Identity()
    with_cfg.pretrained_cfg = {"input_size": (2, 64, 48)}
    assert _model_in_chans(with_cfg) == 2
    assert _model_in_chans(nn.Identity()) == 3
    with_other = nn.Identity()
    with_other.pretrained_cfg = object()  # not a dict (no .get): fall back to RGB
    assert _model_in_chans(with_other) == 3


def test_gaussian_probe_is_seeded_float64_normal_cast_to_dtype():
    model = nn.Identity()
    model.in_chans = 2
    x = gaussian_input(model, 5, 3)
    ref = torch.randn(3, 2, 5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert x.dtype == torch.float32 and x.shape == (3, 2, 5, 5)
    torch.testing.assert_close(x, ref.float(), rtol=0, atol=0)
    x64 = gaussian_input(model, 5, 3, seed=7, dtype=torch.float64)
    ref7 = torch.randn(3, 2, 5, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    torch.testing.assert_close(x64, ref7, rtol=0, atol=0)
    assert gaussian_input(model, 1, 1).shape == (1, 2, 1, 1)  # the smallest valid probe
    for size, batch in ((0, 1), (1, 0), (-3, 2)):
        with pytest.raises(ValueError, match=r"^img_size and batch_size must be positive, got"):
            gaussian_input(model, size, batch)


def test_batch_statistics_mode_uses_batch_stats_and_restores_everything():
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3), nn.Dropout(0.5), nn.BatchNorm2d(3))
    model.train()
    model[1].eval()  # a mixed model: each module's own mode must come back
    bn = model[1]
    with torch.no_grad():
        bn.running_mean.fill_(5.0)
        bn.running_var.fill_(4.0)
    bn.num_batches_tracked.fill_(7)
    x = torch.randn(4, 2, 3, 3) * 3 + 1
    with batch_statistics_mode(model):
        assert not model.training and not model[2].training  # dropout off
        assert bn.training and model[3].training and bn.momentum == 0.0
        y = model[1](model[0](x))
        # batch statistics, not the running ones: each channel comes out with mean 0
        assert y.mean((0, 2, 3)).abs().max() < 1e-5
    assert model.training and not bn.training and model[2].training and model[3].training
    assert bn.momentum == 0.1 and model[3].momentum == 0.1
    assert int(bn.num_batches_tracked) == 7
    assert torch.equal(bn.running_mean, torch.full((3,), 5.0))
    assert torch.equal(bn.running_var, torch.full((3,), 4.0))


def test_nonfinite_statistic_error_names_block_and_fix():
    spec = type("Spec", (), {"index": 3, "name": "stages.1.0", "stage": 1})()
    _check_finite(1.5, "the channel variance", spec, "net")  # finite: no error
    with pytest.raises(
        FloatingPointError,
        match=(
            r"^net: the channel variance at block 3 \(stages\.1\.0, stage 1\) is inf: the signal overflowed "
            r"the forward dtype\. Use a smaller depth or image size, or run the forward in float64 "
            r"\(dtype=torch\.float64 / --dtype float64\)\.$"
        ),
    ):
        _check_finite(math.inf, "the channel variance", spec, "net")
