"""Signals in the parent process: SIGTERM stops a batch as Ctrl-C does."""

from __future__ import annotations

import signal
import threading
from typing import Any


class Interrupted(KeyboardInterrupt):
    """SIGTERM in the parent: stop as on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def interrupt(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def set_handler(signum: int, handler: Any) -> Any:
    """Set a signal handler where one can be set (the main thread); returns the one before."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signum, handler)
