"""mmseg metrics: the depth metrics of the paper's Table 7."""
