"""ifupdown2 if-up.d / if-down.d entry: `python3 -I -m pve_microseg.hook up|down`.

ifupdown2 runs the hooks for every interface on every ifup/ifreload, with the
interface in $IFACE and no arguments.  The shell wrappers in
/etc/network/if-{up,down}.d already returned for interfaces that are not
bridges (up) or carry no rules of ours (down).

Whatever happens, no traceback: an unexpected failure is logged in one line
and the up hook still loads the last good rules it can (the cached
configuration, flows/reconcile.py), so a managed bridge is never left
without rules because of a bug of ours.
"""

import os
import sys

from ..edges import state
from ..edges.log import Log
from ..edges.nft import Nft
from ..edges.paths import Paths
from ..flows import reconcile
from ..model.errors import MicrosegError
from ..parse.names import is_ifname


def last_good(paths, iface, log, why):
    """After an unexpected failure of the up hook: load the cached last good
    configuration (as the hook does when the live one is invalid); never raises."""
    try:
        source = reconcile.read_cached(paths, why)
        for w in source.warnings:
            log.warning(w)
        with state.locked(paths) as no_lock:
            if no_lock:
                log.warning(no_lock)
            loaded, removed, warnings = reconcile.sync(paths, source, Nft)
        for w in warnings:
            log.warning(w)
        for name in loaded:
            log.info(f"{name}: L2 isolation rules loaded (cache configuration)")
    except Exception as e:          # noqa: BLE001 -- nothing more we can do; say so
        log.error(f"{iface}: the last good rules could not be loaded either: {e.__class__.__name__}: {e}")


def main(argv=None, environ=None):
    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    iface = environ.get("IFACE", "")
    if len(argv) != 1 or argv[0] not in ("up", "down") or not iface:
        print("usage: IFACE=<interface> python3 -m pve_microseg.hook up|down", file=sys.stderr)
        return 2
    log = Log()
    if not is_ifname(iface):
        # IFACE names files of ours (markers): never a path
        log.error(f"IFACE={iface!r} is not an interface name: nothing done")
        return 2
    paths = Paths.from_env(environ)
    try:
        if argv[0] == "up":
            reconcile.hook_up(paths, iface, Nft, log, environ)
        else:
            reconcile.hook_down(paths, iface, Nft, log)
    except MicrosegError as e:
        log.error(f"{iface}: {e}")
        return 1
    except Exception as e:          # noqa: BLE001 -- the last resort: never a traceback
        why = f"internal error {e.__class__.__name__}: {e} (please report it)"
        log.error(f"{iface}: {why}")
        if argv[0] == "up":
            last_good(paths, iface, log, why)
        return 1
    return 0
