"""The guest hookscript's entry: `<script> <vmid> <phase>`, as qm/pct call it.

Everything it prints goes to the guest's task log; a non-zero exit on
pre-start stops the start (flows/guesthook.py decides which).
"""

import os
import sys

from ..edges import pmxcfs
from ..edges.paths import Paths
from ..flows.guesthook import PHASES, PREFIX, Hook
from ..parse import names


def main(argv=None, environ=None, out=None, err=None):
    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    out, err = out or sys.stdout, err or sys.stderr
    vmid = names.vmid_or_none(argv[0]) if len(argv) == 2 else None
    if vmid is None:
        print("usage: pve-microseg-hookscript <vmid> <phase>  (phase: " + ", ".join(PHASES) + "; "
              f"<vmid>: {names.VMID_FORM})", file=err)
        return 2
    phase = argv[1]
    if phase not in PHASES:
        print(f"{PREFIX}unknown phase {phase!r}, nothing to do", file=err)
        return 0
    timeout = float(environ.get("PVE_MICROSEG_LOCK_TIMEOUT") or pmxcfs.LOCK_TIMEOUT)  # tests
    return Hook(vmid, phase, environ, Paths.from_env(environ), out, err, lock_timeout=timeout).run()
