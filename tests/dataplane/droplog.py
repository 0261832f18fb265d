"""Drop logging on the real kernel (microseg mode, inside the QEMU guest).

`log: on` in microseg.yaml and node1's installed `pve-microseg apply`; then
g101 sends FRAMES rogue DHCP OFFERs (its own MAC and address: port security
passes them, guest-pre drops them as rogue-dhcp) within a second, well
inside the one-minute interval.  The kernel log (/dev/kmsg, read from the
guest's own kernel: node1 is a network namespace, so
net.netfilter.nf_log_all_netns is set to 1 meanwhile, as a node whose
bridges sit in the initial namespace never needs) must get exactly one
line with the class prefix and g101's port, `pve-microseg rogue-dhcp:
IN=tap101i0 `, and every frame must still be dropped: node1's rogue-dhcp
counter for tap101i0 rose by FRAMES, and no guest and not the gateway
received one.

The class is chosen so that no line can come from background traffic: no
guest sends DHCP server messages of its own (a guest's IPv6 duplicate
address detection or MLD reports, flooded to the other guest ports, are
logged as guest-to-guest; see drops.py), and only lines with this class's
prefix and IN=tap101i0 are counted.  Afterwards microseg.yaml is restored
and applied (logging off): one more OFFER gives no line.
"""

import errno
import os
import time

from . import frames as F, topology
from .cluster import PVE
from .drops import counters
from .probes import seen
from .topology import GUEST

ATTACKER, BYSTANDERS = GUEST[101], (GUEST[102], GUEST[103])
NODE = ATTACKER.node
CLASS = "rogue-dhcp"
FRAMES = 5
PREFIX = f"pve-microseg {CLASS}: "
CONFIG = PVE / "microseg.yaml"
NF_LOG_ALL_NETNS = "/proc/sys/net/netfilter/nf_log_all_netns"

PROPS = {
    "one-line-per-interval": f"log: on; {FRAMES} rogue DHCP OFFERs from g101 within a second: the kernel log has "
                             f"exactly one line '{PREFIX}IN={ATTACKER.port} ', node1's {CLASS} counter for "
                             f"{ATTACKER.port} rose by {FRAMES} and no guest nor the gateway received one",
    "off-again": "log: off again (apply): one more rogue DHCP OFFER from g101 is dropped and logs nothing",
}


class Kmsg:
    """The kernel log records written after it was opened (/dev/kmsg: one
    record per read, `prio,seq,time,flags;message`)."""

    def __init__(self):
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)

    def lines(self):
        out = []
        while True:
            try:
                record = os.read(self.fd, 8192)
            except BlockingIOError:
                return out
            except OSError as e:
                if e.errno == errno.EPIPE:      # overwritten before we read it: the next read goes on
                    continue
                raise
            out.append(record.decode(errors="replace").split(";", 1)[-1].split("\n", 1)[0])

    def close(self):
        os.close(self.fd)


def ours(lines, port=ATTACKER.port):
    """The lines of this class for this port (a line from another class or
    port is someone else's)."""
    return [l for l in lines if PREFIX in l and f"IN={port} " in l]


def _offer(nonce):
    a, v = ATTACKER, BYSTANDERS[0]
    return F.dhcp_offer(a.mac, a.ip4, v.mac, v.ip4, nonce)


def _apply(text):
    CONFIG.write_text(text)
    r = topology.in_node(NODE, "pve-microseg apply", check=False)
    if r.returncode != 0:
        raise RuntimeError(f"pve-microseg apply: rc={r.returncode} {(r.stdout + r.stderr)[-300:]}")


def _attack(wire, kmsg, frames):
    """Send `frames` OFFERs from g101; (our log lines, rise of g101's counter, who received one)."""
    before = counters(NODE)
    kmsg.lines()                                # drop what came before
    nonces = [F.new_nonce() for _ in range(frames)]
    wire.drain()
    for n in nonces:
        wire.send(ATTACKER.ns, _offer(n))
        time.sleep(0.1)
    captured = wire.capture(seconds=0.5)
    time.sleep(0.3)                             # printk is asynchronous to the packet path
    lines = kmsg.lines()
    after = counters(NODE)
    key = (ATTACKER.port, CLASS)
    rose = after.get(key, (0,))[0] - before.get(key, (0,))[0]
    got = sorted({endpoint for endpoint in captured for n in nonces if seen(captured, endpoint, n)})
    return lines, rose, got


def _verdict(ok, lines, rose, got):
    mine = ours(lines)
    return ("pass" if ok else "fail",
            f"{len(mine)} line(s) of ours ({len([l for l in lines if 'pve-microseg' in l])} pve-microseg lines in "
            f"all); counter +{rose}; received by: {', '.join(got) or 'nobody'}"
            + (f"; first: {mine[0][:160]}" if mine else ""))


def run(wire):
    out = {}
    original = CONFIG.read_text()
    try:
        with open(NF_LOG_ALL_NETNS) as f:
            all_netns = f.read().strip()
    except OSError as e:
        return {f"droplog/{p}": ("fail", f"cannot read {NF_LOG_ALL_NETNS}: {e}") for p in PROPS}
    kmsg = None
    try:
        with open(NF_LOG_ALL_NETNS, "w") as f:
            f.write("1\n")
        kmsg = Kmsg()
        try:
            _apply("log: on\n" + original)
            lines, rose, got = _attack(wire, kmsg, FRAMES)
            out["droplog/one-line-per-interval"] = _verdict(
                len(ours(lines)) == 1 and rose == FRAMES and not got, lines, rose, got)
        except RuntimeError as e:
            out["droplog/one-line-per-interval"] = ("fail", str(e)[-300:])
        try:
            _apply(original)
            lines, rose, got = _attack(wire, kmsg, 1)
            out["droplog/off-again"] = _verdict(not ours(lines) and rose == 1 and not got, lines, rose, got)
        except RuntimeError as e:
            out["droplog/off-again"] = ("fail", str(e)[-300:])
    except OSError as e:
        for p in PROPS:
            out.setdefault(f"droplog/{p}", ("fail", f"{type(e).__name__}: {e}"))
    finally:
        if kmsg is not None:
            kmsg.close()
        if CONFIG.read_text() != original:
            CONFIG.write_text(original)
            topology.in_node(NODE, "pve-microseg apply", check=False)
        with open(NF_LOG_ALL_NETNS, "w") as f:
            f.write(all_netns + "\n")
    return out
