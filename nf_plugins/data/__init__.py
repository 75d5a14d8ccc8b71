"""Data preparation: VOC and NYUv2 conversion, image checks, synthetic datasets in the real on-disk formats.

Never imports mmseg, mmcv or mmengine, so a machine that only prepares data needs neither.
"""
