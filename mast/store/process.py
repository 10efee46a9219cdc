"""Which process a run row belongs to, and whether that process is gone.

A ``runs`` row is written ``running`` and updated when the run ends; a process killed in
between (SIGKILL, power loss, a crash) never updates it.  The row therefore names its
process (pid, host and a start token that tells a reused pid from the original) and the
store, opened for writing, marks the rows of processes that no longer exist
``interrupted`` (:meth:`mast.store.Store.mark_interrupted_runs`).  A row of a live
process, or of another host (its processes cannot be seen from here), is left alone.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _start_token(pid: int) -> str | None:
    """The boot id and the process's start time in clock ticks (Linux), else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()   # the command name may hold spaces and parentheses
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None


def current() -> tuple[int, str, str | None]:
    """``(pid, host, start token)`` of this process."""
    pid = os.getpid()
    return pid, socket.gethostname(), _start_token(pid)


def gone(pid: int | None, host: str | None, token: str | None) -> bool:
    """True only when the process is certainly not running: on this host, and either no
    process has that pid or the one that has it started at another time."""
    if pid is None or host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass                      # alive, another user's
    except OSError:
        return False
    if token is not None:
        now = _start_token(pid)
        return now is not None and now != token
    return False
