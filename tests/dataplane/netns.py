"""Network namespaces from one Python process.

setns(2) with CLONE_NEWNET moves only the calling thread; a socket keeps the
namespace it was created in.  So the checks open every socket they need, each
in its own namespace, then send and sniff from a single thread with select().
"""

import contextlib
import ctypes
import os
import socket
import subprocess

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def netns(name):
    """Run the body with the calling thread in network namespace `name` (None: stay)."""
    if name is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        _setns(target)
        yield
    finally:
        _setns(home)
        os.close(home)
        os.close(target)


def sysctl(ns, settings):
    """Write net sysctls ({"ipv6/conf/default/accept_dad": 0, ...}) inside `ns`."""
    with netns(ns):
        for key, value in settings.items():
            with open(f"/proc/sys/net/{key}", "w") as f:
                f.write(str(value))


def run(cmd, ns=None, check=True, input=None, timeout=120):
    """Run a command (list or shell string) in `ns` via `ip netns exec`; return CompletedProcess."""
    if isinstance(cmd, str):
        cmd = ["sh", "-c", cmd]
    if ns is not None:
        cmd = ["ip", "netns", "exec", ns] + cmd
    proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


def ip_batch(ns, lines):
    """Run `ip` commands (one per line, without the leading `ip`) in `ns` in one process."""
    cmd = ["ip"] + (["-n", ns] if ns else []) + ["-batch", "-"]
    return run(cmd, input="\n".join(lines) + "\n")


def packet_socket(ns, ifname):
    """An AF_PACKET socket bound to `ifname` in `ns`; sees received frames only."""
    with netns(ns):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        except OSError:
            pass                                    # < 4.20: pkttype is checked too
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        sock.bind((ifname, ETH_P_ALL))
    sock.setblocking(False)
    return sock


def inet_socket(ns, family, kind=socket.SOCK_DGRAM):
    """A kernel socket (UDP by default) living in `ns`: routed with that ns's neighbour table."""
    with netns(ns):
        return socket.socket(family, kind)
