"""Quiet output: the known third-party deprecation notices are hidden by category, message and module, at the
entry points (nf_plugins._quiet) and in pytest (pyproject.toml); ours never are, and in pytest ours fail."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest

from nf_plugins import _quiet

ROOT = Path(__file__).resolve().parents[1]
# real messages as the libraries print them (copied from a `make demo` run), with the module warnings names
PKG_RESOURCES = (
    "pkg_resources is deprecated as an API. See https://setuptools.pypa.io/en/latest/pkg_resources.html. "
    "The pkg_resources package is slated for removal as early as 2025-11-30."
)
BUILD_LOSS = "``build_loss`` would be deprecated soon, please use ``mmseg.registry.MODELS.build()`` "
VISUALIZER = (
    "<class 'mmseg.visualization.local_visualizer.SegLocalVisualizer'> instance named of visualizer has been "
    "created, the method `get_instance` should not accept any other arguments"
)
JIT = "`torch.jit.script` is deprecated. Please switch to `torch.compile` or `torch.export`."


def _shown(message: str, category: type[Warning], module: str) -> bool:
    """Whether a warning raised in ``module`` gets through the filters in force."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the default "once per location" would hide repeats
        _quiet.filter_third_party_warnings()
        warnings.warn_explicit(message, category, f"{module.replace('.', '/')}.py", 1, module=module)
    return bool(caught)


def test_pyproject_filters_are_the_entry_points_filters_then_ours_as_errors():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert config["filterwarnings"] == [*_quiet.pytest_filter_lines(), "error::Warning:nf_plugins"]


@pytest.mark.parametrize(
    ("message", "category", "module"),
    [
        (PKG_RESOURCES, UserWarning, "importlib"),  # mmseg's __init__ imports it through importlib
        (PKG_RESOURCES, UserWarning, "mmengine.utils.package_utils"),
        (BUILD_LOSS, UserWarning, "mmseg.models.builder"),
        (VISUALIZER, UserWarning, "mmengine.utils.manager"),
        (JIT, DeprecationWarning, "torch.jit._script"),
    ],
)
def test_known_third_party_notices_are_hidden_at_the_entry_points(message, category, module):
    assert not _shown(message, category, module)


@pytest.mark.parametrize(
    ("message", "category", "module"),
    [
        (PKG_RESOURCES, UserWarning, "nf_plugins.data.voc"),  # ours: never hidden
        (BUILD_LOSS, UserWarning, "nf_plugins.downstream.models.seg_head"),
        (BUILD_LOSS, DeprecationWarning, "mmseg.models.builder"),  # another category
        ("a new notice nobody has read yet", UserWarning, "mmseg.models.builder"),  # another message
        (JIT, DeprecationWarning, "torchvision.models"),  # another module
    ],
)
def test_anything_else_still_shows(message, category, module):
    assert _shown(message, category, module)


def test_pytest_turns_our_warnings_into_errors_and_hides_the_known_ones():
    """No filter of the test's own: pyproject.toml's are in force."""
    with pytest.raises(UserWarning, match="ours"):
        warnings.warn_explicit("ours", UserWarning, "nf_plugins/spp/cli.py", 1, module="nf_plugins.spp.cli")
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn_explicit(
            BUILD_LOSS, UserWarning, "mmseg/models/builder.py", 36, module="mmseg.models.builder"
        )
    assert caught == []
    with pytest.warns(UserWarning, match="ours"):  # a test that expects our warning still sees it
        warnings.warn_explicit("ours", UserWarning, "nf_plugins/atomic.py", 1, module="nf_plugins.atomic")


def test_mmengine_logged_deprecations_are_dropped_other_warnings_kept(capsys):
    pytest.importorskip("mmengine")
    from mmengine.logging import MMLogger, print_log

    _quiet.filter_third_party_warnings()
    logger = MMLogger.get_instance("test_quiet_mmengine", logger_name="mmengine")
    notices = [
        '"FileClient" will be deprecated in future. Please use io functions in https://mmengine.readthedocs.io',
        '"HardDiskBackend" is the alias of "LocalBackend" and the former will be deprecated in future.',
        "The prefix is not set in metric class IoUMetric.",
    ]
    for message in [*notices, "loss is nan at iteration 3"]:
        print_log(message, logger=logger, level=logging.WARNING)
    print_log("The prefix is not set in metric class IoUMetric.", logger=logger, level=logging.ERROR)
    out = capsys.readouterr().out
    assert "WARNING - loss is nan at iteration 3" in out  # other warnings, and the notices as errors, stay
    assert [line.split(" - ")[2] for line in out.splitlines() if "The prefix is not set" in line] == ["ERROR"]
    assert not any(f"WARNING - {message[:30]}" in out for message in notices), out
