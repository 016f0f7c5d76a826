"""SIGTERM while sandboxes live or plans run: end like Ctrl-C, so servers are stopped and
plans roll back.

CI runners, ``timeout`` and process managers end a process with SIGTERM, whose default action
kills it on the spot: every sandbox server it started would keep running, and a plan applied
to existing servers would stop half-way (an old primary stopped and no standby promoted yet,
a half-made clone and its slot). While at least one sandbox lives or one plan runs
(:func:`hold` ... :func:`release`; holds nest), SIGTERM raises
:class:`~pgstream.errors.Terminated` (a ``KeyboardInterrupt``) in the main thread instead, and
the usual cleanup runs: plans roll back, ``with`` blocks and fixtures close their clusters,
finalizers remove what is left at exit.

Etiquette for a library: the handler is installed only from the main thread and only over
the default action. A handler the application set is chained to: it is called, and decides (a
raised ``SystemExit`` cleans up the same way); an ignored SIGTERM stays ignored. Once the
last sandbox is gone the previous handler is put back, unless the application has replaced
ours meanwhile. While the cleanup after a first SIGTERM runs, further ones are ignored.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

from pgstream.errors import Terminated

_lock = threading.RLock()
_holders = 0
_previous: Any = None
_installed = False
_terminating = False


def _handler(signum: int, frame: FrameType | None) -> None:
    global _terminating
    previous = _previous
    if callable(previous):
        previous(signum, frame)  # the application's own handler decides
        return
    if _holders > 0:
        if _terminating:
            return  # the cleanup after the first SIGTERM is running: let it finish
        _terminating = True
        raise Terminated("SIGTERM: rolling back and stopping the sandbox servers before "
                         "exiting")
    # No sandbox left (and ours could not be taken back from another thread): the default.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def installed() -> bool:
    """Is pgstream's SIGTERM handler in place now?"""
    return signal.getsignal(signal.SIGTERM) is _handler


def hold() -> None:
    """A sandbox now lives or a plan runs: from the main thread, install the handler (if
    SIGTERM has the default action or an application handler; never over an ignored
    SIGTERM)."""
    global _holders, _previous, _installed, _terminating
    with _lock:
        _holders += 1
        if _installed or threading.current_thread() is not threading.main_thread():
            return
        current = signal.getsignal(signal.SIGTERM)
        if current is _handler:
            _installed = True
            return
        if current in (signal.SIG_IGN, None):  # ignored, or set outside Python: not ours
            return
        _previous = current
        _terminating = False
        signal.signal(signal.SIGTERM, _handler)
        _installed = True


def release() -> None:
    """A sandbox is gone or a plan ended: after the last hold, put the previous handler back
    (from the main thread, if ours is still the one installed)."""
    global _holders, _previous, _installed, _terminating
    with _lock:
        _holders = max(0, _holders - 1)
        if _holders or not _installed:
            return
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread; ours defers
        if signal.getsignal(signal.SIGTERM) is _handler:
            signal.signal(signal.SIGTERM, _previous if _previous is not None else
                          signal.SIG_DFL)
        _previous = None
        _installed = False
        _terminating = False
