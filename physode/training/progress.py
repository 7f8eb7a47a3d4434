"""A one-line progress display for long work, on stderr."""

from __future__ import annotations

import sys
import time


class Progress:
    """Shows `[step/total] message (elapsed)`: rewritten in place on a terminal, otherwise printed
    as a line about every 5% of the work (and on the last step), so logs stay short."""

    def __init__(self, total: int, enabled: bool = True, stream=None):
        self.total, self.enabled = total, enabled
        self.stream = sys.stderr if stream is None else stream
        self.interactive = enabled and self.stream.isatty()
        self.every = max(1, total // 20)
        self.start = time.perf_counter()

    def update(self, step: int, message: str) -> None:
        if not self.enabled:
            return
        line = f"[{step:>{len(str(self.total))}}/{self.total}] {message} ({time.perf_counter() - self.start:.1f} s)"
        if self.interactive:
            self.stream.write("\r\033[K" + line)
        elif step % self.every == 0 or step == self.total or step == 1:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()
