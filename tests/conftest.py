import functools
import os

import pytest
import torch

import nf_plugins  # noqa: F401  (registers the models)


def _cache_mmengine_metafile_reads() -> None:
    """Read each of mmseg's model metafiles once per test session instead of once per `mmseg::` base.

    mmengine resolves every `mmseg::_base_/...` entry of a config by first loading all ~210 metafiles
    listed in mmseg's model-index.yml (looking for an experiment of that name), and only then falls
    back to the base path. The suite parses each of our 40 configs several times, so those repeated
    YAML loads were about two minutes of the default run. The files and the resolution are unchanged;
    only the re-parsing of identical files goes. Subprocess tests (torchrun, tools) still pay it.
    """
    try:
        import mmengine.config.utils as cfg_utils
    except ImportError:  # the core install without the [mm] extra
        return
    cfg_utils.load = functools.lru_cache(maxsize=None)(cfg_utils.load)


_cache_mmengine_metafile_reads()

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one pytest-xdist worker per core; a worker's ops then use one thread each, so
    # that two workers do not oversubscribe the cores (torch defaults to one thread per core).
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield
