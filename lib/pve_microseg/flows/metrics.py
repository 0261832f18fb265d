"""`pve-microseg metrics`: this node's state for Prometheus (node_exporter's
textfile collector).

Reads what `status --local` reads (flows/status.py local_detail(): the
kernel's table, its bindings and drop counters, the managed bridges and
their guest ports), the bridges' markers and the configuration stamp
(edges/state.py); policy/metrics.py renders it.  With a textfile the text
is published atomically (a temporary file beside it, renamed over it), mode
0644 so node_exporter's user can read it: node_exporter reads every *.prom
file of its directory as it is, so a partly written one would be read.

A refresh that fails still writes the file, with pve_microseg_up 0 and a
fresh timestamp (never the last good numbers looking current), and says why
on standard error and in a comment of the file; an internal error does the
same before it is reported as one (entry/cli.py: never a traceback).
"""

import dataclasses
import time
from pathlib import Path

from .. import __version__
from ..edges import files, node, state
from ..model.errors import ExitCode, MicrosegError
from ..policy import metrics as policy
from . import status
from .result import Result

SUFFIX = ".prom"        # node_exporter's textfile collector reads only these
FILE_MODE = 0o644
NEEDS_ROOT = "pve-microseg metrics needs root (it reads the node's nftables): run it as root"


def _failure(e):
    if isinstance(e, MicrosegError):
        return str(e), e.exit_code
    if isinstance(e, OSError):
        return f"{e.filename}: {e.strerror or e}" if e.filename else str(e.strerror or e), ExitCode.ERROR
    return f"internal error {e.__class__.__name__}: {e}", ExitCode.ERROR


def collect(paths, nft_factory, clock=time.time, timer=time.monotonic):
    """(Snapshot, exit status, the exception to re-raise or None)."""
    started, t0 = clock(), timer()
    internal, code = None, ExitCode.OK
    try:
        data, detail = status.local_detail(paths, nft_factory)
        data = data.data
        snap = policy.snapshot(started, 0.0, __version__, data, detail, state.applied(paths),
                               state.config_stamp(paths))
    except Exception as e:          # noqa: BLE001 -- a failed refresh must say so in the file
        message, code = _failure(e)
        if not isinstance(e, (MicrosegError, OSError)):
            internal = e
        try:
            here = node.local_node(paths)
        except Exception:           # noqa: BLE001 -- the name is a courtesy
            here = ""
        snap = policy.Snapshot(started, 0.0, __version__, here, error=message)
    if snap.error and code == ExitCode.OK:
        code = ExitCode.ERROR
    return dataclasses.replace(snap, duration=max(0.0, timer() - t0)), code, internal


def publish(path, text):
    """Write the textfile atomically (MicrosegError naming it on failure)."""
    path = Path(path)
    try:
        files.write_atomic(path, text, mode=FILE_MODE)
    except OSError as e:
        raise MicrosegError(f"{path}: cannot write the textfile: {e.strerror or e}") from None


def metrics(paths, nft_factory, textfile=None, clock=time.time, timer=time.monotonic):
    """Render this node's metrics; with textfile, publish them there too.
    The Result's data: {"text": the exposition, "textfile": path or None,
    "up": bool}; a failed refresh is a warning and a non-zero exit status."""
    snap, code, internal = collect(paths, nft_factory, clock, timer)
    text = policy.render(snap)
    if textfile is not None:
        publish(textfile, text)
    if internal is not None:
        raise internal
    warnings = []
    if snap.error:
        warnings.append(f"metrics: refresh failed (pve_microseg_up 0): {snap.error}")
        if not node.is_root():
            warnings.append(NEEDS_ROOT)
    return Result({"text": text, "textfile": None if textfile is None else str(textfile), "up": not snap.error},
                  code, warnings)
