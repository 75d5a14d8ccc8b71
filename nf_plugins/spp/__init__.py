"""Signal Propagation Plots (paper section 3): per-block statistics of any timm model at init."""

from .adapters import BlockFamily, BlockSpec, find_blocks, register_family, supported_families
from .plot import plot_spp, read_json, write_json
from .reference_nets import FIGURES, REFERENCE_NETS, build_reference
from .stats import (
    BlockStats,
    SppResult,
    batch_statistics_mode,
    channel_stats,
    gaussian_input,
    signal_propagation,
)

__all__ = [
    "FIGURES",
    "REFERENCE_NETS",
    "BlockFamily",
    "BlockSpec",
    "BlockStats",
    "SppResult",
    "batch_statistics_mode",
    "build_reference",
    "channel_stats",
    "find_blocks",
    "gaussian_input",
    "plot_spp",
    "read_json",
    "register_family",
    "signal_propagation",
    "supported_families",
    "write_json",
]
