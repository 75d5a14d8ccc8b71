"""Progress of a long step: a tqdm bar on a terminal, else one log line per tenth of the way.

tqdm redraws its bar with carriage returns; in a CI log or a file every redraw piles up in one line.
When the stream is not a terminal, :class:`Progress` prints ``desc: done/total unit (p%), elapsed, ETA``
at each 10% instead, and only once ``min_interval`` seconds have passed since the previous line: at most
ten lines for a step, and a single line (the last) for one that takes seconds. Imports nothing of the
package.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any, TypeVar

T = TypeVar("T")


class Progress:
    """``update(n, **postfix)`` after each unit of work; a context manager that closes the bar."""

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "it",
        *,
        every: float = 0.1,
        min_interval: float = 5.0,
        enabled: bool = True,
        stream: IO[str] | None = None,
    ) -> None:
        self.total, self.desc, self.unit, self.every, self.min_interval = (
            total,
            desc,
            unit,
            every,
            min_interval,
        )
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled and total > 0
        self.done, self.start, self.next_line = 0, time.monotonic(), every * total
        self.last_line = self.start
        self.bar = None
        if self.enabled and getattr(self.stream, "isatty", lambda: False)():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, dynamic_ncols=True)

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.done += n
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(n)
        elif self.enabled and self.done >= self.next_line:
            while self.next_line <= self.done:
                self.next_line += self.every * self.total
            now = time.monotonic()
            if self.done >= self.total or now - self.last_line >= self.min_interval:
                self.last_line = now
                self._line(postfix)

    def _line(self, postfix: dict[str, Any]) -> None:
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else math.inf
        eta = (self.total - self.done) / rate if self.done < self.total else 0.0
        extra = "".join(f", {key}={value}" for key, value in postfix.items())
        print(
            f"{self.desc}: {self.done}/{self.total} {self.unit} ({100 * self.done / self.total:.0f}%), "
            f"{elapsed:.0f} s, ETA {eta:.0f} s{extra}",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(
    items: Iterable[T], desc: str, unit: str = "it", total: int | None = None, **kwargs: Any
) -> Iterator[T]:
    """Iterate ``items`` with a :class:`Progress` (``total`` defaults to ``len(items)``)."""
    with Progress(len(items) if total is None else total, desc, unit, **kwargs) as bar:
        for item in items:
            yield item
            bar.update()
