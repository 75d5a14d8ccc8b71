"""Hide the third-party deprecation notices a user of our tools can do nothing about.

mmengine, mmcv and mmseg warn about their own internals on every run (``pkg_resources``, ``build_loss``,
``FileClient``, visualizer notices): dozens of lines that bury the results. Each entry point (``tools/*.py``,
``nf-plugins``, the demos) calls :func:`filter_third_party_warnings` once. A notice is hidden only when its
category, its message and the module it is attributed to all match an entry of :data:`KNOWN_WARNINGS`;
nothing attributed to ``nf_plugins`` is ever hidden. ``pyproject.toml``'s pytest ``filterwarnings`` holds the
same entries (checked by ``tests/test_quiet.py``). This module imports nothing heavy, so it can run
before anything else is imported.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings

# (category, message regex, module regex): the module is the one ``warnings`` attributes the notice to
# (the caller at the warning's stacklevel), matched from its start as ``warnings.filterwarnings`` does.
KNOWN_WARNINGS: tuple[tuple[type[Warning], str, str], ...] = (
    # setuptools' pkg_resources, imported by mmengine/mmcv/mmseg: attributed to whichever module imports it
    # (mmengine.utils.package_utils, or importlib when mmseg's __init__ pulls it in), so matched anywhere
    # outside nf_plugins (the negative look-ahead keeps ours).
    (UserWarning, r"pkg_resources is deprecated as an API", r"(?!nf_plugins)"),
    (UserWarning, r"``build_loss`` would be deprecated soon", r"mmseg\.models\.builder"),
    (UserWarning, r"Default ``avg_non_ignore`` is False", r"mmseg\.models\.losses\.cross_entropy_loss"),
    (UserWarning, r"The draw is False, it means that the hook for visualization", r"mmseg\.engine\.hooks"),
    (UserWarning, r"<class .+> instance named of .+ has been created", r"mmengine\.utils\.manager"),
    # torch's notice on every torch.jit.script/interface call (timm's models and ours stay scriptable, and
    # the tests script them on purpose); raised in torch.jit itself
    (DeprecationWarning, r"`torch\.jit\.\w+` is deprecated", r"torch\.jit"),
)

# mmengine logs some of its deprecation notices through its own logger instead of ``warnings``.
KNOWN_MMENGINE_LOGS: tuple[str, ...] = (
    r'"FileClient" will be deprecated in future',
    r'"HardDiskBackend" is the alias of "LocalBackend"',
    r"The prefix is not set in metric class",
)
_KNOWN_LOG = re.compile("|".join(KNOWN_MMENGINE_LOGS))


_mmengine_logs_requested = False


def filter_third_party_warnings() -> None:
    """Ignore the :data:`KNOWN_WARNINGS` from now on, and mmengine's logged notices (see
    :func:`quiet_mmengine_logs_if_requested`)."""
    global _mmengine_logs_requested
    for category, message, module in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    _mmengine_logs_requested = True
    if "mmengine.logging" in sys.modules:
        _install_mmengine_log_filter()


def quiet_mmengine_logs_if_requested() -> None:
    """Called by ``nf_plugins.downstream`` on import (every tool that runs mmengine imports it): filters
    mmengine's logged notices there if an entry point asked for quiet. Importing mmengine in
    :func:`filter_third_party_warnings` itself would cost seconds in the tools that never use it, and a
    library user who never called it keeps mmengine's logs untouched."""
    if _mmengine_logs_requested:
        _install_mmengine_log_filter()


def pytest_filter_lines() -> list[str]:
    """The :data:`KNOWN_WARNINGS` as pytest ``filterwarnings`` lines (``action:message:category:module``)."""
    return [f"ignore:{message}:{category.__name__}:{module}" for category, message, module in KNOWN_WARNINGS]


def _is_known_mmengine_notice(record: logging.LogRecord) -> bool:
    return record.levelno == logging.WARNING and bool(_KNOWN_LOG.match(str(record.msg)))


def _install_mmengine_log_filter() -> None:
    """Drop the :data:`KNOWN_MMENGINE_LOGS` records of every ``MMLogger``.

    Each mmengine Runner makes its own ``MMLogger`` (not registered with ``logging``, so no filter on a
    parent logger reaches it) and logs the notices while it trains or tests; the one place that sees every
    instance's records is ``MMLogger.callHandlers``, so that method is wrapped, once.
    """
    from mmengine.logging import MMLogger

    if getattr(MMLogger.callHandlers, "_nf_plugins_quiet", False):
        return
    call_handlers = MMLogger.callHandlers

    def quiet_call_handlers(self, record: logging.LogRecord) -> None:
        if not _is_known_mmengine_notice(record):
            call_handlers(self, record)

    quiet_call_handlers._nf_plugins_quiet = True
    MMLogger.callHandlers = quiet_call_handlers
