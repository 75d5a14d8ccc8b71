"""The paper's ImageNet training recipe over timm's components (``nf-plugins train-imagenet``).

- :mod:`~nf_plugins.train.recipe`: the shared recipe values, YAML configs on top, checks
- :mod:`~nf_plugins.train.ema`: the paper's weight averaging (EMA with a decay warm-up)
- :mod:`~nf_plugins.train.resume`: RNG states and log trimming, for exact resume
- :mod:`~nf_plugins.train.trainer`: the loop (single process or torchrun DDP) and its checkpoints
- :mod:`~nf_plugins.train.cli`: the command line
"""
