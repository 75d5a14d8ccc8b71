"""Ending a torchrun worker cleanly on CPU (gloo) with torch 2.13."""

from __future__ import annotations

import logging
import os
import sys

import torch.distributed as dist


def exit_if_distributed(status: int = 0) -> None:
    """After a finished distributed run: synchronise, flush, and leave without running destructors.

    With torch 2.13 the gloo process group's destructor, run at interpreter exit (or when DDP drops its
    last reference), can deadlock on the GIL or abort with "terminate called without an active
    exception" (both seen in CI on finished 2-process runs). Everything is saved by the time this runs,
    so the worker exits with ``status`` (0: success) instead. A no-op outside ``torch.distributed``.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    logging.shutdown()  # flush log files (mmengine, ours)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
