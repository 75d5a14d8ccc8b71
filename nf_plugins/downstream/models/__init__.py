"""mmseg models: the NF backbone, the FCN and up-projection heads, the reverse Huber loss."""
