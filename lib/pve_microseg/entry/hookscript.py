"""The guest hookscript's entry: `<script> <vmid> <phase>`, as qm/pct call it.

Everything it prints goes to the guest's task log; a non-zero exit on
pre-start stops the start (flows/guesthook.py decides which).  Whatever
happens, no traceback: an unexpected failure is reported in one line and
follows the default failure policy (fail-closed: a pre-start fails).
"""

import os
import sys

from ..edges import pmxcfs
from ..edges.paths import Paths
from ..flows.guesthook import PHASES, PREFIX, Hook
from . import args

LOCK_TIMEOUT_ENV = "PVE_MICROSEG_LOCK_TIMEOUT"      # tests: how long to wait for a cluster lock


def lock_timeout(environ, err):
    """The cluster lock timeout: pmxcfs.LOCK_TIMEOUT, or (tests) the environment's."""
    text = environ.get(LOCK_TIMEOUT_ENV)
    if not text:
        return pmxcfs.LOCK_TIMEOUT
    try:
        return args.seconds(text, most=600)
    except ValueError as e:
        print(f"{PREFIX}WARNING: {LOCK_TIMEOUT_ENV}: {e}; waiting {pmxcfs.LOCK_TIMEOUT:g} s instead",
              file=err, flush=True)
        return pmxcfs.LOCK_TIMEOUT


def main(argv=None, environ=None, out=None, err=None):
    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    out, err = out or sys.stdout, err or sys.stderr
    usage = "usage: pve-microseg-hookscript <vmid> <phase>  (phase: " + ", ".join(PHASES) + ")"
    if len(argv) != 2:
        print(usage, file=err)
        return 2
    try:
        vmid = args.vmid(argv[0])
    except ValueError as e:
        print(f"{PREFIX}{e}\n{usage}", file=err)
        return 2
    phase = argv[1]
    if phase not in PHASES:
        print(f"{PREFIX}unknown phase {phase!r}, nothing to do", file=err)
        return 0
    try:
        return Hook(vmid, phase, environ, Paths.from_env(environ), out, err,
                    lock_timeout=lock_timeout(environ, err)).run()
    except Exception as e:          # noqa: BLE001 -- the last resort: never a traceback
        what = f"internal error {e.__class__.__name__}: {e} (please report it)"
        if phase == "pre-start":    # microseg.yaml unknown here: the default, fail-closed
            print(f"{PREFIX}guest {vmid} not started: {what}", file=err, flush=True)
            return 1
        print(f"{PREFIX}WARNING: guest {vmid} {phase}: {what}", file=err, flush=True)
        return 0
