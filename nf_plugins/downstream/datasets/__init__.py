"""mmseg datasets and transforms with the input checks of our recipes."""
