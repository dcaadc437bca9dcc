"""Files that appear complete or not at all: the one home of protperf's atomic writes.

A writer writes to a partial file beside its target, named after the writing process
(``.NAME.tmp-HOST-PID``), and renames it into place. A later writer removes the partials of
writers that died on this host. This module is a leaf (standard library only), so every layer
(data preparation included) may write through it.
"""

from __future__ import annotations

import os
import socket


def host_name() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """True if a process ``pid`` runs on this host (another user's included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
