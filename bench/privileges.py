"""Make a child started by root meet file permissions like any user, so that permission faults bite.

Root ignores a folder's mode bits through two capabilities. Dropping them from the child's
bounding set, before it runs its program, leaves it root in every other way: it can still
run the project's interpreter from wherever it is installed, which a switch to another user
could not (a home folder of mode 700, for one).
"""

from __future__ import annotations

import ctypes
import os

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def drop_permission_overrides() -> None:
    """For `preexec_fn`: a no-op for other users, who never had the overrides."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "cannot drop a capability")
