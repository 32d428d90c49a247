"""Locks that survive ``os.fork``.

A child process gets a copy of every lock in the state it was in at the fork. If another
thread of the parent held one then (the live line, ``explore(auto_refresh=True)``, a frame
being built), the child's copy stays locked forever and the child hangs at its first
``spans_df()`` or trim. Each object registers here to get fresh locks in the child; what
they guard (the spans collected so far) is the child's own copy from then on.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any


def fresh_locks_after_fork(owner: Any, *names: str) -> None:
    """In a forked child, replace ``owner``'s lock attributes with new, unlocked ones."""
    if not hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
        return
    ref = weakref.ref(owner)

    def renew() -> None:
        obj = ref()
        if obj is None:
            return
        for name in names:
            kind = threading.RLock if isinstance(getattr(obj, name, None),
                                                 type(threading.RLock())) else threading.Lock
            setattr(obj, name, kind())

    os.register_at_fork(after_in_child=renew)
