"""The ImageNet recipe: the paper's shared values once, a YAML config on top, then ``--set`` overrides.

Where each value comes from (one definition each):

- :data:`RECIPE`: what every model of the paper trains with (section 5.1 and appendix C: SGD Nesterov
  0.9, global batch 1024, 5-epoch warm-up to lr 0.4, label smoothing 0.1, weight decay 5e-5,
  stochastic depth 0.1), with weight averaging and CutMix/MixUp off.
- the model itself: ``train_size``/``test_size`` from its ``pretrained_cfg`` (``input_size``,
  ``test_input_size``: appendix D for NF-RegNets) and ``drop_rate`` from its own default (appendix D's
  EfficientNet rates for NF-RegNets), unless a config sets them.
- ``configs/imagenet/_base_/nf_resnet.yaml`` / ``nf_regnet.yaml``: what each family changes (the
  regularized NF-ResNet rows of section 5.1; appendix C's 360 epochs, EMA and CutMix + MixUp), and
  ``configs/imagenet/<model>.yaml`` only what differs per model (appendix D's weight decay).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from ..errors import did_you_mean
from ..mim import resolve_config

# The recipe proper: these keys define the training (the model card lists them; export reads this tuple).
RECIPE: dict[str, Any] = dict(
    epochs=90,
    warmup_epochs=5,  # linear warm-up from 0 to lr, then cosine to 0 (per step)
    batch_size=1024,  # global, split across processes
    lr=0.4,
    momentum=0.9,
    nesterov=True,
    weight_decay=5e-5,  # none on gains, biases and skip gains (model.no_weight_decay)
    label_smoothing=0.1,
    drop_rate=None,  # None: the model's own default (appendix D's per-variant rate for NF-RegNets)
    drop_path_rate=0.1,  # stochastic depth 0.1 * i / n at block i of n, no 1/keep rescale
    train_size=None,  # None: the model's pretrained_cfg input_size
    test_size=None,  # None: the model's pretrained_cfg test_input_size
    ema_decay=None,  # e.g. 0.99999; None: no EMA
    mixup_alpha=0.0,
    cutmix_alpha=0.0,
)
RECIPE_KEYS: tuple[str, ...] = tuple(RECIPE)
FROM_MODEL = ("train_size", "test_size", "drop_rate")  # None in a config: the model's own value

DEFAULTS: dict[str, Any] = dict(
    model=None,
    num_classes=1000,
    **RECIPE,
    mixup_switch_prob=0.5,
    workers=8,
    seed=0,
    checkpoint_every=1,
    amp=False,  # bfloat16 autocast (GPU)
    train_split="train",
    val_split="validation",
    notes="",
)


def _check_key(key: object, where: object) -> None:
    """Refuse a key the recipe does not have, with the closest known ones."""
    if key not in DEFAULTS:
        hint = did_you_mean(str(key), DEFAULTS, otherwise=f"known keys: {sorted(DEFAULTS)}")
        raise ValueError(f"unknown config key {key!r} in {where}; {hint}")


def _read(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML config with its ``_base_`` (a path relative to the file) merged under it, recursively.

    Written here rather than with mmengine's ``Config``: the trainer runs without the ``[mm]`` extra,
    and a flat key/value recipe needs only this much of mmengine's inheritance.
    """
    if not path.is_file():
        where = f" (the _base_ of {chain[-1]})" if chain else ""
        raise FileNotFoundError(f"config {path}{where} does not exist; see configs/imagenet/")
    if path.resolve() in chain:
        raise ValueError(f"{path}: _base_ chain loops back to itself: {' -> '.join(map(str, chain))}")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} must hold key: value lines, got a {type(loaded).__name__}")
    base = loaded.pop("_base_", None)
    for key in loaded:
        _check_key(key, path)
    if base is None:
        return loaded
    if not isinstance(base, str):
        raise ValueError(f"{path}: _base_ must be one file name, got {base!r}")
    return {**_read(path.parent / base, (*chain, path.resolve())), **loaded}


def load_config(path: str | Path, overrides: list[str]) -> dict[str, Any]:
    """:data:`DEFAULTS`, then the YAML at ``path`` (with its ``_base_``), then ``key=value`` overrides
    (values parsed as YAML); keys left ``None`` in :data:`FROM_MODEL` take the model's values.

    ``path`` may name a shipped config as ``nf_plugins::imagenet/<model>.yaml`` (an installed package).
    """
    path = resolve_config(path)
    cfg = dict(DEFAULTS)
    cfg.update(_read(path))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}")
        _check_key(key, "--set")
        cfg[key] = yaml.safe_load(value)
    if not cfg["model"]:
        raise ValueError(f"{path}: 'model' is required (e.g. nf_regnet_b0)")
    return _from_model(check_config(cfg, path))


def _from_model(cfg: dict[str, Any]) -> dict[str, Any]:
    """Fill the :data:`FROM_MODEL` keys left ``None`` from the model (built on the meta device: no memory,
    a fraction of a second), so the config holds the values training uses."""
    unset = [key for key in FROM_MODEL if cfg[key] is None]
    if unset:
        import torch

        from ..models import create_model

        with torch.device("meta"):
            model = create_model(cfg["model"], num_classes=cfg["num_classes"])
        pcfg = model.pretrained_cfg
        own = dict(
            train_size=pcfg["input_size"][-1],
            test_size=(pcfg.get("test_input_size") or pcfg["input_size"])[-1],
            drop_rate=float(getattr(model, "drop_rate", 0.0)),
        )
        cfg.update({key: own[key] for key in unset})
    return cfg


# key: (type, lowest, highest, lowest allowed, highest allowed); a bound of None is open.
_NUMBERS: dict[str, tuple[type, float | None, float | None, bool, bool]] = dict(
    num_classes=(int, 1, None, True, True),
    epochs=(int, 1, None, True, True),
    warmup_epochs=(float, 0, None, True, True),
    batch_size=(int, 1, None, True, True),
    lr=(float, 0, None, False, True),
    momentum=(float, 0, 1, True, False),
    weight_decay=(float, 0, None, True, True),
    label_smoothing=(float, 0, 1, True, False),
    drop_rate=(float, 0, 1, True, False),
    drop_path_rate=(float, 0, 1, True, False),
    train_size=(int, 32, None, True, True),
    test_size=(int, 32, None, True, True),
    ema_decay=(float, 0, 1, True, False),  # 0 or None: no EMA
    mixup_alpha=(float, 0, None, True, True),
    cutmix_alpha=(float, 0, None, True, True),
    mixup_switch_prob=(float, 0, 1, True, True),
    workers=(int, 0, None, True, True),
    seed=(int, 0, None, True, True),
    checkpoint_every=(int, 1, None, True, True),
)


def check_config(cfg: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """Types and ranges of every key, so ``--set lr=abc`` or ``epochs=-1`` fails before any work.

    A float key also takes a string that parses as a number (YAML reads ``5e-5`` as a string). ``None``
    is allowed for ``ema_decay`` (no EMA) and the :data:`FROM_MODEL` keys (the model's value).
    """
    for key, (kind, low, high, low_ok, high_ok) in _NUMBERS.items():
        value = cfg[key]
        if value is None and (key == "ema_decay" or key in FROM_MODEL):
            continue
        if kind is float and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        ok_type = isinstance(value, int) if kind is int else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or not math.isfinite(value):
            raise ValueError(
                f"{path} / --set: {key}={cfg[key]!r} is not a{'n integer' if kind is int else ' number'}"
            )
        if (low is not None and (value < low or (value == low and not low_ok))) or (
            high is not None and (value > high or (value == high and not high_ok))
        ):
            lo = "(-inf" if low is None else f"{'[' if low_ok else '('}{low}"
            hi = "inf)" if high is None else f"{high}{']' if high_ok else ')'}"
            raise ValueError(f"{path} / --set: {key}={value!r} is outside {lo}, {hi}")
        cfg[key] = kind(value)
    if cfg["warmup_epochs"] > cfg["epochs"]:
        raise ValueError(
            f"{path} / --set: warmup_epochs={cfg['warmup_epochs']} exceeds epochs={cfg['epochs']}"
        )
    for key in ("nesterov", "amp"):
        if not isinstance(cfg[key], bool):
            raise ValueError(f"{path} / --set: {key}={cfg[key]!r} must be true or false")
    for key in ("model", "train_split", "val_split", "notes"):
        if not isinstance(cfg[key], str):
            raise ValueError(f"{path} / --set: {key}={cfg[key]!r} must be a string")
    return cfg


def model_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """``create_model`` arguments of a recipe (classes, dropout, stochastic depth)."""
    return dict(
        num_classes=cfg["num_classes"], drop_rate=cfg["drop_rate"], drop_path_rate=cfg["drop_path_rate"]
    )
