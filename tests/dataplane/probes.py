"""Send frames and observe them at the receiver.

A Wire holds one AF_PACKET socket per endpoint (a guest's eth0, the gateway's
gw0.100), each opened in its own namespace.  A check sends frames carrying a
nonce, then `capture()` collects what every endpoint received during a short
window, and the check looks for its nonce at the receiver.  Observations are
always made at the receiving side (a sniffer, a neighbour table, a bridge's
FDB, a ping reply), never inferred from a missing reply.
"""

import json
import select
import subprocess
import time

from . import netns
from .frames import Frame
from .topology import GATEWAY_IF, GATEWAY_NS, GUESTS

GATEWAY = "gateway"


class Wire:
    def __init__(self):
        self.endpoints = {g.ns: (g.ns, "eth0") for g in GUESTS}
        self.endpoints[GATEWAY] = (GATEWAY_NS, GATEWAY_IF)
        self.socks = {name: netns.packet_socket(ns, ifname) for name, (ns, ifname) in self.endpoints.items()}

    def close(self):
        for s in self.socks.values():
            s.close()

    def drain(self):
        for s in self.socks.values():
            try:
                while s.recv(65535):
                    pass
            except BlockingIOError:
                pass

    def send(self, endpoint, frame):
        self.socks[endpoint].send(frame)

    def capture(self, seconds=0.5, expect=(), grace=0.15):
        """{endpoint: [Frame, ...]} received (not sent) within `seconds`; stops
        `grace` seconds after every (endpoint, nonce) in `expect` has been seen."""
        got = {name: [] for name in self.socks}
        by_fd = {s.fileno(): name for name, s in self.socks.items()}
        pending = set(expect)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(list(self.socks.values()), [], [], left)
            for s in ready:
                name = by_fd[s.fileno()]
                try:
                    while True:
                        data, addr = s.recvfrom(65535)
                        if addr[2] != netns.PACKET_OUTGOING:
                            frame = Frame(data)
                            got[name].append(frame)
                            pending -= {(e, n) for e, n in pending if e == name and n in frame}
                except BlockingIOError:
                    pass
            if expect and not pending:
                deadline = min(deadline, time.monotonic() + grace)
                expect = ()
        return got

    def exchange(self, sends, seconds=0.5, expect=()):
        """Drain, send [(endpoint, frame), ...], capture."""
        self.drain()
        for endpoint, frame in sends:
            self.send(endpoint, frame)
        return self.capture(seconds, expect)


def seen(captured, endpoint, nonce):
    return any(nonce in f for f in captured.get(endpoint, ()))


# ---- kernel-side observations ---------------------------------------------------

def pings(jobs, timeout=2):
    """Run real `ping` commands in parallel: jobs = {key: (ns, address)} ->
    {key: (ok, summary line)}; ok when one of two echo requests was answered
    (the reply is observed by the pinger)."""
    procs = {}
    for key, (ns, addr) in jobs.items():
        procs[key] = subprocess.Popen(["ip", "netns", "exec", ns, "ping", "-n", "-c", "2", "-i", "0.3",
                                       "-W", str(timeout), addr],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = {}
    for key, p in procs.items():
        text, _ = p.communicate()
        lines = [l for l in text.splitlines() if "received" in l or "ping:" in l] or text.splitlines()[-1:]
        out[key] = (p.returncode == 0, lines[0].strip() if lines else "")
    return out


def neighbour_mac(ns, address, dev="eth0"):
    """The lladdr of `address` in `ns`'s neighbour table, or None."""
    r = netns.run(["ip", "-n", ns, "-j", "neigh", "show", address, "dev", dev], check=False)
    try:
        entries = json.loads(r.stdout or "[]")
    except ValueError:
        return None
    return entries[0].get("lladdr") if entries else None


def address_state(ns, address, dev="eth0"):
    """The flags of `address` on `dev` in `ns` (tentative, dadfailed, ...); {"absent"} if not there."""
    r = netns.run(["ip", "-n", ns, "-j", "addr", "show", "dev", dev], check=False)
    try:
        links = json.loads(r.stdout or "[]")
    except ValueError:
        return {"unreadable"}
    for link in links:
        for a in link.get("addr_info", []):
            if a.get("local") == address:
                return {k for k in ("tentative", "dadfailed", "deprecated") if a.get(k)}
    return {"absent"}


def set_neighbours(ns, entries, state="permanent", dev="eth0"):
    """entries: [(ip, mac)]; `ip neigh replace ... nud <state>` in one batch."""
    netns.ip_batch(ns, [f"neigh replace {ip} lladdr {mac} dev {dev} nud {state}" for ip, mac in entries])


def fdb_ports(ns, bridge, mac):
    """The ports of `bridge` in `ns` on which `mac` is learned (dynamic entries)."""
    r = netns.run(["bridge", "-n", ns, "-j", "fdb", "show", "br", bridge], check=False)
    try:
        entries = json.loads(r.stdout or "[]")
    except ValueError:
        return []
    return sorted({e["ifname"] for e in entries if e.get("mac") == mac and "permanent" not in e.get("state", "")})


def udp_send(ns, family, dst, payload, port=9999):
    """Send a UDP datagram through the kernel stack of `ns` (uses its neighbour table)."""
    s = netns.inet_socket(ns, family)
    try:
        s.sendto(payload, (dst, port))
    finally:
        s.close()



def sniffer(ns, ifname="eth0"):
    """A packet socket on `ifname` in `ns`, drained: what arrives from now on."""
    sock = netns.packet_socket(ns, ifname)
    try:
        while sock.recv(65535):
            pass
    except BlockingIOError:
        pass
    return sock


def received(sock, nonce, seconds):
    """Did a frame carrying `nonce` arrive on `sock` (not sent by it) within `seconds`?"""
    import select
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            break
        try:
            while True:
                data, addr = sock.recvfrom(65535)
                if addr[2] != netns.PACKET_OUTGOING and nonce in data:
                    return True
        except BlockingIOError:
            pass
    return False
