import pytest
import torch

import nf_plugins  # noqa: F401  (registers the models)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield
