"""Ctrl-C deferral: an update and its bookkeeping happen together or not at all
(docs/reliability.md)."""

from __future__ import annotations

import signal
import threading


class interrupts_deferred:
    """Hold a Ctrl-C until the block is done (main thread only), then raise it: an update and
    its bookkeeping happen together or not at all."""

    def __enter__(self) -> interrupts_deferred:
        self.hit, self.previous = False, None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._note)
        return self

    def _note(self, *_: object) -> None:
        self.hit = True

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        if self.hit:
            raise KeyboardInterrupt
