"""Side-by-side benchmark: ours vs timm BN ResNetV2, EfficientNet and timm's own NF models."""

import sys

from nf_plugins.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
