"""Export a registered model to ONNX with Scaled WS folded into plain conv weights."""

import sys

from nf_plugins.cli import main

if __name__ == "__main__":
    sys.exit(main(["export-onnx", *sys.argv[1:]]))
