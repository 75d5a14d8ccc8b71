"""nf_plugins.progress: a bar on a terminal, one line per tenth of the way elsewhere (CI logs)."""

from __future__ import annotations

import io
import re

from nf_plugins.progress import Progress, progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_not_a_terminal_prints_one_line_per_tenth():
    out = io.StringIO()
    with Progress(250, "epoch 1/3", "step", stream=out, min_interval=0) as bar:
        for _ in range(250):
            bar.update(1, loss="0.5")
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [re.match(r"epoch 1/3: (\d+)/250 step \((\d+)%\)", line).groups() for line in lines] == [
        ("25", "10"), ("50", "20"), ("75", "30"), ("100", "40"), ("125", "50"),
        ("150", "60"), ("175", "70"), ("200", "80"), ("225", "90"), ("250", "100"),
    ]  # fmt: skip
    assert all(re.search(r", \d+ s, ETA \d+ s, loss=0.5$", line) for line in lines)
    assert lines[-1].endswith("ETA 0 s, loss=0.5")


def test_few_steps_and_big_updates_never_print_more_than_once_per_update():
    out = io.StringIO()
    list(progress(range(3), "spp", "block", stream=out, min_interval=0))
    assert [line.split(" (")[0] for line in out.getvalue().splitlines()] == [
        "spp: 1/3 block",
        "spp: 2/3 block",
        "spp: 3/3 block",
    ]
    out = io.StringIO()
    with Progress(100, "copy", stream=out, min_interval=0) as bar:
        bar.update(55)  # passes five tenths at once: one line
        bar.update(45)
    assert [line.split(" (")[0] for line in out.getvalue().splitlines()] == [
        "copy: 55/100 it",
        "copy: 100/100 it",
    ]


def test_a_step_of_seconds_prints_only_its_last_line():
    """min_interval (5 s by default): the ten lines of a fast loop would only be noise in a CI log."""
    out = io.StringIO()
    list(progress(range(40), "check VOC pairs", "pair", stream=out))
    assert [line.split(",")[0] for line in out.getvalue().splitlines()] == [
        "check VOC pairs: 40/40 pair (100%)"
    ]


def test_terminal_gets_a_tqdm_bar_and_disabled_prints_nothing():
    tty = _Terminal()
    assert list(progress(range(40), "extract", "file", stream=tty)) == list(range(40))
    text = tty.getvalue()
    assert "\r" in text and "100%|" in text and "40/40" in text
    assert not re.search(r"extract: \d+/40 file \(", text)  # no log lines on a terminal
    quiet = io.StringIO()
    list(progress(range(40), "extract", stream=quiet, enabled=False))
    assert quiet.getvalue() == ""
