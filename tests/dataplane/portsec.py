"""Port bindings of a guest that appears after `apply` (microseg mode, inside the QEMU guest).

VM 104 is created on node1 after the rules and bindings were loaded, and
has no hookscript: its tap port is plugged into vnet1 as Proxmox's tap_plug
does.  Until it is bound it sends nothing; then the installed udev rule's
command binds it (udev itself does not run in the QEMU guest, and would not
see a network namespace's devices: the rule's RUN line is executed in node1
as udev would, with the port's name); then the port is re-plugged, then
removed.  Observed: real pings to the gateway, a spoofed source at the
gateway's sniffer, and the kernel's bind-* sets.
"""

import json
import re
from pathlib import Path

from . import cluster, frames as F, netns, topology
from .probes import GATEWAY, pings, seen
from .topology import GATEWAY_IP4, GATEWAY_MAC, GUEST, VNET1, Guest

LATE = Guest(104, "node1", "tap")
RULE = Path("/usr/lib/udev/rules.d/60-pve-microseg.rules")

PROPS = {
    "closed-before-binding": "VM 104, created after apply and plugged into vnet1, reaches nothing before "
                             "its port is bound (ping to the gateway fails)",
    "status-reports-unbound": "pve-microseg status --local on node1 names tap104i0 as a port without binding "
                              "(exit 9) before, and no more after the rule ran",
    "udev-rule-binds": "the installed udev rule's command for tap104i0 (add) binds it: VM 104 reaches the "
                       "gateway",
    "bound-port-cannot-spoof": "VM 104, bound, sends UDP to the gateway from g102's IPv4: not at the gateway",
    "re-plug-keeps-binding": "tap104i0 taken off vnet1 and plugged again: VM 104 still reaches the gateway",
    "udev-rule-unbinds": "tap104i0 removed, the rule's command for remove: no bind-* element names it any more",
}


def _run_rule(action, port):
    """The RUN command of the rule line for `action`, as udev would run it."""
    line = next(l for l in RULE.read_text().splitlines() if l.startswith("ACTION==") and action in l.split(",")[0])
    command = re.search(r'RUN\+="([^"]*)"', line).group(1).replace("$name", port)
    return topology.in_node(LATE.node, command, check=False)


def _elements_naming(port):
    r = topology.in_node(LATE.node, "nft -j list table bridge pve_microseg", check=False)
    try:
        objs = json.loads(r.stdout)["nftables"]
    except (ValueError, KeyError):
        return None
    return [e for o in objs if "set" in o and o["set"]["name"].startswith("bind-")
            for e in o["set"].get("elem", []) if isinstance(e, dict) and e.get("concat", [None])[0] == port]


def _create_guest():
    conf = cluster.PVE / "nodes" / LATE.node / "qemu-server" / f"{LATE.vmid}.conf"
    conf.write_text(f"ipconfig0: ip={LATE.ip4}/24,ip6={LATE.ip6}/64\n"
                    f"net0: virtio={LATE.mac.upper()},bridge={VNET1.name}\n")
    vmlist = json.loads((cluster.PVE / ".vmlist").read_text())
    vmlist["ids"][str(LATE.vmid)] = {"node": LATE.node, "type": "qemu", "version": 99}
    (cluster.PVE / ".vmlist").write_text(json.dumps(vmlist))
    netns.ip_batch(None, [f"netns add {LATE.ns}"])
    netns.ip_batch(LATE.node, [f"link add {LATE.nic} type veth peer name eth0 address {LATE.mac} netns {LATE.ns}"])
    netns.ip_batch(LATE.ns, ["link set lo up", f"addr add {LATE.ip4}/24 dev eth0",
                             f"addr add {LATE.ip6}/64 dev eth0 nodad", "link set eth0 up",
                             f"route add default via {GATEWAY_IP4}"])
    netns.ip_batch(LATE.node, [f"link set {LATE.port} master {VNET1.name} up"])


def _unbound():
    r = topology.in_node(LATE.node, "pve-microseg status --local --output-format json", check=False)
    try:
        return r.returncode, [u["port"] for u in json.loads(r.stdout).get("unbound-ports", [])]
    except ValueError:
        return r.returncode, (r.stdout + r.stderr)[-200:]


def _ping():
    return pings({"p": (LATE.ns, GATEWAY_IP4)})["p"]


def run(wire):
    out = {}
    _create_guest()
    ok, line = _ping()
    out["closed-before-binding"] = (not ok, f"ping gateway: {line}; bind-* elements: {_elements_naming(LATE.port)}")
    before = _unbound()
    r = _run_rule("add", LATE.port)
    after = _unbound()
    out["status-reports-unbound"] = (before == (9, [LATE.port]) and LATE.port not in after[1],
                                     f"before: rc={before[0]} {before[1]}; after: rc={after[0]} {after[1]}")
    ok, line = _ping()
    out["udev-rule-binds"] = (ok and r.returncode == 0,
                              f"rc={r.returncode} {(r.stdout + r.stderr).strip()[-160:]}; ping gateway: {line}")
    sock = netns.packet_socket(LATE.ns, "eth0")
    try:
        n = F.new_nonce()
        wire.drain()
        sock.send(F.udp4_frame(GATEWAY_MAC, LATE.mac, GUEST[102].ip4, GATEWAY_IP4, 9999, 9999, n))
        cap = wire.capture(0.5, expect=[(GATEWAY, n)])
    finally:
        sock.close()
    out["bound-port-cannot-spoof"] = (not seen(cap, GATEWAY, n), f"at the gateway: {seen(cap, GATEWAY, n)}")
    netns.ip_batch(LATE.node, [f"link set {LATE.port} nomaster", f"link set {LATE.port} master {VNET1.name} up"])
    ok, line = _ping()
    out["re-plug-keeps-binding"] = (ok, f"ping gateway: {line}")
    netns.ip_batch(LATE.node, [f"link del {LATE.port}"])
    r = _run_rule("remove", LATE.port)
    left = _elements_naming(LATE.port)
    out["udev-rule-unbinds"] = (r.returncode == 0 and left == [],
                                f"rc={r.returncode}; elements naming {LATE.port}: {left}")
    return {f"portsec/{k}": ("pass" if ok else "fail", d) for k, (ok, d) in out.items()}
