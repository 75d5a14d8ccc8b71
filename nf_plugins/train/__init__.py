"""The paper's ImageNet training recipe (appendix A) over timm's components: ``nf_plugins.train.imagenet``."""
