import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

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


HF_REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Callable[[str, Path], Path]:
    """An empty, offline Hugging Face cache in tmp; returns ``put(repo_id, folder)``, which stores the
    folder's files as huggingface_hub stores a download (blobs named by their sha256, linked from
    snapshots/<revision>/, refs/main naming the revision) and returns the snapshot folder. The files are
    hard-linked, so ``folder`` stays as it was."""
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hf_home" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(cache.parent))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)  # read at import: the env is too late
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))

    def put(repo_id: str, folder: Path) -> Path:
        repo = cache / ("models--" + repo_id.replace("/", "--"))
        snapshot, blobs = repo / "snapshots" / HF_REVISION, repo / "blobs"
        snapshot.mkdir(parents=True)
        blobs.mkdir()
        for f in Path(folder).iterdir():
            blob = blobs / hashlib.sha256(f.read_bytes()).hexdigest()
            os.link(f, blob)
            (snapshot / f.name).symlink_to(Path("..", "..", "blobs", blob.name))
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(HF_REVISION)
        return snapshot

    return put
