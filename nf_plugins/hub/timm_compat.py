"""Why timm's ``nf_resnet50.ra2_in1k`` weights cannot load into the paper-exact NF-ResNet-50.

timm's NF-ResNet differs from ours in five places that a weight mapping absorbs exactly, and one that
none can:

1. gamma: timm folds it into every conv (``ScaledStdConv2d(gamma=1.7139...)``, DeepMind's sampled
   value) including the stem conv on raw pixels; ours scales the activation by the exact
   ``sqrt(2 / (1 - 1/pi)) = 1.71286``. Absorbed in each conv's gain.
2. Scaled WS eps: timm ``(W - mean) / sqrt(fan_in * (Var + 1e-5))``, ours
   ``/ sqrt(fan_in * Var + 1e-4)``. Standardization ignores the weight's scale except through eps,
   so ``W * sqrt(10 / fan_in)`` in ours computes timm's conv exactly.
3. Gain shape ``(out, 1, 1, 1)`` in timm, ``(out,)`` in ours.
4. SkipInit: timm's nf_resnet50 has no ``skipinit_gain`` (its conv3 gain starts at 0 instead); ours
   = 1 reproduces it.
5. Final activation: timm's is a plain ReLU, ours gamma-scaled, so the classifier weight is / gamma.
6. **Transition shortcut**: timm's uses a 2x2 average pool + 1x1 conv (ResNet-D style,
   ``DownsampleAvg``), the paper's NF-ResNets a strided 1x1 conv. An average over a 2x2 window is
   not any function of the one pixel a strided conv reads, so no mapping exists.

``nf_resnet_from_timm`` performs 1-5; the tests load the result into our builder with
``shortcut_pool=True`` (logits equal timm's) and into the paper-exact NF-ResNet-50 (logits differ).
Hence ``nf_resnet50.ra2_in1k`` keeps timm's architecture.
"""

from __future__ import annotations

import torch

from ..layers.activations import GAMMA_TABLE

TIMM_RELU_GAMMA = 1.7139588594436646  # timm.models.nfnet._nonlin_gamma["relu"]
TIMM_STD_CONV_EPS = 1e-5  # timm.models.nfnet.NfCfg.std_conv_eps
OUR_STD_CONV_EPS = 1e-4


def nf_resnet_from_timm(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm NF-ResNet (ReLU, no skipinit) weights -> our NormFreeNet key layout and parametrisation."""
    ours_gamma = GAMMA_TABLE["relu"]
    out: dict[str, torch.Tensor] = {}
    blocks = set()
    for key, value in state_dict.items():
        if not key.endswith(".weight") or value.ndim != 4:
            continue
        prefix = key[: -len(".weight")]
        if f"{prefix}.gain" not in state_dict:
            raise KeyError(
                f"{prefix}: a Scaled WS conv without '{prefix}.gain'; not a timm NF-ResNet checkpoint"
            )
        weight = value.double()
        fan_in = weight[0].numel()
        out[key] = (weight * (OUR_STD_CONV_EPS / (fan_in * TIMM_STD_CONV_EPS)) ** 0.5).to(value.dtype)
        gain = state_dict[f"{prefix}.gain"].double().reshape(-1) * TIMM_RELU_GAMMA
        if prefix != "stem.conv":  # convs after an activation: ours applies its own gamma to the input
            gain = gain / ours_gamma
        out[f"{prefix}.gain"] = gain.to(value.dtype)
        if f"{prefix}.bias" in state_dict:
            out[f"{prefix}.bias"] = state_dict[f"{prefix}.bias"]
        if prefix.startswith("stages."):
            blocks.add(".".join(prefix.split(".")[:3]))
    for block in blocks:
        out[f"{block}.skipinit_gain"] = torch.ones(())
    out["head.fc.weight"] = (state_dict["head.fc.weight"].double() / ours_gamma).to(
        state_dict["head.fc.weight"].dtype
    )
    out["head.fc.bias"] = state_dict["head.fc.bias"]
    return out
