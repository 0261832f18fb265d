"""The demo's before/after pictures (`pve-microseg graph`'s drawing), made on the host.

The demo's cluster lives inside the QEMU guest and is gone when it ends, so
the pictures are drawn here from what the guest reported: the topology the
demo built (topology.py: vnet1, its guests per node, the gateway), each
node's loaded ruleset (a node whose table is loaded is drawn protected,
one without it OPEN), and what the attack checks observed (an attack that
got through after install is written on the picture as a problem).  The
drawing is policy/graph.py's, the same as `pve-microseg graph`.
"""

import shutil
import subprocess
import sys

from .checks import ATTACK_PROPS, ATTACKER, VICTIMS
from .guest import REPO
from .topology import GATEWAY_IP4, GATEWAY_IP6, GATEWAY_MAC, GUESTS, NODES, VNET1, ZONE

sys.path.insert(0, str(REPO / "lib"))
from pve_microseg.policy import graph as picture  # noqa: E402

DEFAULT_DIR = REPO / "dist" / "demo"


def bridge_picture(run, title):
    """A BridgePicture of vnet1 as one run (no rules, or pve-microseg) saw it."""
    rulesets = run.data.get("rulesets") or {}
    state = {n: picture.PROTECTED if "pve_microseg" in (rulesets.get(n) or "") else picture.NO_RULES
             for n in NODES}
    guests = tuple(picture.GuestNic(vmid=g.vmid, nic=0, node=g.node, type="lxc" if g.kind == "veth" else "qemu",
                                    name=f"{g.ns} {g.port}", mac=g.mac, addresses=(g.ip4, g.ip6))
                   for g in GUESTS)
    got_through = [f"observed: {p} from {ATTACKER.ns} reached {v.ns}" for p in ATTACK_PROPS for v in VICTIMS
                   if run.rows.get(f"{p}/{ATTACKER.ns}->{v.ns}", {}).get("observed") == "delivered"]
    shown = got_through[:6] + ([f"... and {len(got_through) - 6} more"] if len(got_through) > 6 else [])
    return picture.BridgePicture(
        name=VNET1.name, vnet=True, zone=ZONE, zone_type="vlan", gateway_macs=(GATEWAY_MAC,),
        gateway_ips=(GATEWAY_IP4, GATEWAY_IP6), nodes=tuple(picture.NodeView(n, state[n]) for n in NODES),
        guests=guests, problems=tuple(shown)), title


def write(before, after, where=DEFAULT_DIR, dot=None):
    """Write demo-before/after .dot (and .svg when graphviz's dot is here);
    return the paths written."""
    where.mkdir(parents=True, exist_ok=True)
    dot = shutil.which("dot") if dot is None else dot
    written = []
    for name, run, title in (("before", before, "no rules: who can reach whom"),
                             ("after", after, "pve-microseg: who can reach whom")):
        p, title = bridge_picture(run, title)
        text = picture.dot([p], title=f"{VNET1.name}, {title}")
        path = where / f"demo-{name}.dot"
        path.write_text(text, encoding="utf-8")
        written.append(path)
        if dot:
            svg = where / f"demo-{name}.svg"
            subprocess.run([dot, "-Tsvg", "-o", str(svg), str(path)], check=True, timeout=120)
            written.append(svg)
    return written
