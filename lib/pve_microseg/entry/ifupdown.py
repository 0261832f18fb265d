"""ifupdown2 if-up.d / if-down.d entry: `python3 -I -m pve_microseg.hook up|down`.

ifupdown2 runs the hooks for every interface on every ifup/ifreload, with the
interface in $IFACE and no arguments.  The shell wrappers in
/etc/network/if-{up,down}.d already returned for interfaces that are not
bridges (up) or carry no rules of ours (down).
"""

import os
import sys

from ..edges.log import Log
from ..edges.nft import Nft
from ..edges.paths import Paths
from ..flows.reconcile import hook_down, hook_up
from ..model.errors import MicrosegError
from ..parse.names import is_ifname


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
            hook_up(paths, iface, Nft, log, environ)
        else:
            hook_down(paths, iface, Nft, log)
    except MicrosegError as e:
        log.error(f"{iface}: {e}")
        return 1
    return 0
