"""A simulated two-node Proxmox cluster made of network namespaces.

    ns gateway:  gw0 ── gw0.100 (10.100.0.1, 2001:db8:100::1, MAC 02:00:00:00:01:01)
                  │
    ns fabric:   sw (the physical switch)
                  │ eth0                              │ eth0
    ns node1:    vmbr0 ─ eth0.100 ─ vmbr0v100 ─ pr_vnet1══ln_vnet1 ─ vnet1
                 vnet1 ports: tap101i0 (g101), veth102i0 (g102),
                              fwpr103p0══fwln103i0 ─ fwbr103i0 ─ tap103i0 (g103)
    ns node2:    same SDN shape; vnet1 ports: tap201i0 (g201), veth202i0 (g202)
    ns g<vmid>:  eth0, the guest's NIC

A second zone, where the node itself is the gateway (routed.py): the VNet
`evnet` of an EVPN zone, on both nodes: 10.200.0.1/24 and 2001:db8:200::1/64
with the zone's anycast MAC on each node's evnet bridge, forwarding on, a
VXLAN port to the other node (FRR's part -- the neighbour entries of remote
guests -- is played by static entries); guests g501, g502 on node1, g601 on
node2; a host behind the gateway at 192.168.0.1 (the gateway namespace,
untagged on the switch).

Each node's network is brought up by the real ifupdown2 (`ifup -a`) inside the
node's namespace, from an /etc/network/interfaces shaped like a Proxmox node's
plus the /etc/network/interfaces.d/sdn that SDN generates for a VLAN zone on a
non-VLAN-aware vmbr0.  Guest ports are plugged afterwards, as Proxmox's
tap_plug does when a guest starts.

Everything here runs inside the QEMU guest, as root.
"""

import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import netns

GATEWAY_MAC = "02:00:00:00:01:01"
GATEWAY_IP4 = "10.100.0.1"
GATEWAY_IP6 = "2001:db8:100::1"
GATEWAY_NS, GATEWAY_IF = "gateway", "gw0.100"
FABRIC_NS, SWITCH = "fabric", "sw"
NODES = ("node1", "node2")
ZONE, UPLINK_BRIDGE = "zone1", "vmbr0"
STATE_ROOT = Path("/run/dataplane")

# Per-node private copies of the paths ifupdown2 and pve-microseg keep per host.
NODE_BINDS = {
    "interfaces": "/etc/network/interfaces",
    "interfaces.d": "/etc/network/interfaces.d",
    "run-network": "/run/network",              # ifupdown2 lock + run state
    "var-tmp-network": "/var/tmp/network",      # ifupdown2 state_dir (Debian default)
    "var-lib-pve-microseg": "/var/lib/pve-microseg",  # pve-microseg's node-local cache
    "run-pve-microseg": "/run/pve-microseg",          # pve-microseg's applied-bridge state
}


@dataclass(frozen=True)
class Vnet:
    name: str
    tag: int
    subnet4: str          # e.g. "10.100.0" (a /24)
    subnet6: str          # e.g. "2001:db8:100:" (a /64)

    @property
    def gateway_ips(self):
        return [f"{self.subnet4}.1", f"{self.subnet6}:1"]


VNET1 = Vnet("vnet1", 100, "10.100.0", "2001:db8:100:")

# the routed VNet: an EVPN zone, the node is the gateway (routed.py)
ROUTED_ZONE, ROUTED_VNET, ROUTED_VNI = "evpn1", "evnet", 11000
ANYCAST_MAC = "02:00:00:00:0e:01"
ROUTED_GW4, ROUTED_GW6 = "10.200.0.1", "2001:db8:200::1"
BEHIND_GATEWAY = "192.168.0.1"      # a host the node routes to, on vmbr0's network


def node_ip(node):
    return f"192.168.0.{10 + NODES.index(node) + 1}"
VNET2 = Vnet("vnet2", 101, "10.101.0", "2001:db8:101:")


@dataclass(frozen=True)
class Guest:
    """A VM or container NIC (net0) on vnet1.  kind: tap (VM), veth (CT), fwpr (VM with firewall=1)."""

    vmid: int
    node: str
    kind: str

    @property
    def ns(self):
        return f"g{self.vmid}"

    @property
    def mac(self):
        return f"02:00:00:{self.vmid // 100:02d}:{self.vmid % 100:02d}:00"

    @property
    def ip4(self):
        return f"{VNET1.subnet4}.{self.vmid}"

    @property
    def ip6(self):
        return f"{VNET1.subnet6}:{self.vmid}"

    @property
    def nic(self):
        """The host-side device of the guest NIC (a veth standing in for a tap)."""
        return f"veth{self.vmid}i0" if self.kind == "veth" else f"tap{self.vmid}i0"

    @property
    def port(self):
        """The device enslaved to the VNet bridge."""
        return f"fwpr{self.vmid}p0" if self.kind == "fwpr" else self.nic

    @property
    def label(self):
        return {"tap": "VM", "veth": "CT", "fwpr": "VM+fwbr"}[self.kind] + f" {self.vmid}@{self.node}"

    bridge = VNET1.name
    gateway4 = f"{VNET1.subnet4}.1"


GUESTS = (
    Guest(101, "node1", "tap"),
    Guest(102, "node1", "veth"),
    Guest(103, "node1", "fwpr"),
    Guest(201, "node2", "tap"),
    Guest(202, "node2", "veth"),
)
GUEST = {g.vmid: g for g in GUESTS}


# ---- the interfaces files ----------------------------------------------------

def node_interfaces(node):
    """The node's /etc/network/interfaces, as the Proxmox installer writes it."""
    idx = NODES.index(node) + 1
    return (
        "auto lo\n"
        "iface lo inet loopback\n"
        "\n"
        "iface eth0 inet manual\n"
        "\n"
        f"auto {UPLINK_BRIDGE}\n"
        f"iface {UPLINK_BRIDGE} inet static\n"
        f"\taddress 192.168.0.{10 + idx}/24\n"
        "\tbridge-ports eth0\n"
        "\tbridge-stp off\n"
        "\tbridge-fd 0\n"
        "\n"
        "source /etc/network/interfaces.d/*\n"
    )


def sdn_interfaces(vnets, version=1, node=None):
    """/etc/network/interfaces.d/sdn as SDN generates it for a VLAN zone on a
    non-VLAN-aware bridge (pve-network's zones/vlan/bridge test fixture), and,
    given the node, for the EVPN zone's VNet (EvpnPlugin.pm: gateway address,
    anycast hwaddress, forwarding; VXLAN to the other node with a static
    remote instead of FRR)."""
    stanzas = {}
    if node is not None:
        peers = [n for n in NODES if n != node]
        stanzas[f"vxlan_{ROUTED_VNET}"] = [f"vxlan-id {ROUTED_VNI}", f"vxlan-local-tunnelip {node_ip(node)}",
                                           *(f"vxlan-remoteip {node_ip(p)}" for p in peers), "mtu 1450"]
        stanzas[ROUTED_VNET] = [f"address {ROUTED_GW4}/24", f"address {ROUTED_GW6}/64",
                                f"hwaddress {ANYCAST_MAC}", f"bridge_ports vxlan_{ROUTED_VNET}",
                                "bridge_stp off", "bridge_fd 0", "mtu 1450", "ip-forward on",
                                "ip6-forward on", "arp-accept on"]
    for v in vnets:
        stanzas[f"ln_{v.name}"] = ["link-type veth", f"veth-peer-name pr_{v.name}"]
        stanzas[v.name] = [f"bridge_ports ln_{v.name}", "bridge_stp off", "bridge_fd 0"]
        stanzas[f"pr_{v.name}"] = ["link-type veth", f"veth-peer-name ln_{v.name}"]
        stanzas[f"{UPLINK_BRIDGE}v{v.tag}"] = [f"bridge_ports  eth0.{v.tag} pr_{v.name}",
                                                "bridge_stp off", "bridge_fd 0"]
    out = f"#version:{version}\n"
    for name in sorted(stanzas):
        out += f"\nauto {name}\niface {name}\n" + "".join(f"\t{o}\n" for o in stanzas[name])
    return out


def node_dir(node):
    return STATE_ROOT / node


def write_node_config(node, vnets, version=1):
    d = node_dir(node)
    (d / "interfaces.d").mkdir(parents=True, exist_ok=True)
    for sub in NODE_BINDS:
        if sub != "interfaces":
            (d / sub).mkdir(exist_ok=True)
    (d / "interfaces").write_text(node_interfaces(node))
    (d / "interfaces.d" / "sdn").write_text(sdn_interfaces(vnets, version, node))


def node_shell(node, command):
    """A shell command line that runs `command` in the node's netns with the
    node's private interfaces files and state dirs bind-mounted over the real
    paths (`ip netns exec` gives the command its own mount namespace), and the
    node's name where a Proxmox node reads it from /etc/pve/local (shared
    here by both nodes)."""
    binds = " && ".join(f"mount --bind {node_dir(node) / src} {dst}" for src, dst in NODE_BINDS.items())
    return ["ip", "netns", "exec", node, "env", f"PVE_MICROSEG_NODE={node}", "sh", "-c", f"{binds} && {command}"]


def prepare_bind_targets():
    """Mount points for NODE_BINDS must exist in the (overlay) root."""
    for dst in NODE_BINDS.values():
        p = Path(dst)
        if dst.endswith("/interfaces"):
            p.parent.mkdir(parents=True, exist_ok=True)
            p.touch(exist_ok=True)
        else:
            p.mkdir(parents=True, exist_ok=True)


def ifupdown(nodes, command, timeout=300):
    """Run an ifupdown2 command (`ifup -a`, `ifreload -a`, `ifdown vnet1`) in
    every node of `nodes` in parallel; return {node: CompletedProcess-like}."""
    procs = {n: subprocess.Popen(node_shell(n, command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True) for n in nodes}
    results = {}
    for n, p in procs.items():
        out, _ = p.communicate(timeout=timeout)
        results[n] = subprocess.CompletedProcess(p.args, p.returncode, out, "")
    return results


def in_node(node, command, check=True, timeout=120):
    """Run a shell command in a node's netns with its private files (e.g. nft, bridge)."""
    return netns.run(node_shell(node, command), check=check, timeout=timeout)


# ---- building ------------------------------------------------------------------

_QUIET_SYSCTLS = {
    "ipv6/conf/all/accept_dad": 0, "ipv6/conf/default/accept_dad": 0,
    "ipv6/conf/default/dad_transmits": 0,
    "ipv6/conf/all/forwarding": 0,
}


def create_namespaces():
    names = [GATEWAY_NS, FABRIC_NS, *NODES, *(g.ns for g in GUESTS)]
    netns.ip_batch(None, [f"netns add {n}" for n in names])
    for n in names:
        netns.sysctl(n, _QUIET_SYSCTLS)


def build_fabric_and_gateway():
    """The switch and the gateway router on VLAN 100; node uplinks on the switch."""
    netns.ip_batch(FABRIC_NS, [
        "link set lo up",
        f"link add {SWITCH} type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
        f"link set {SWITCH} up",
        f"link add sw-gw type veth peer name gw0 address {GATEWAY_MAC} netns {GATEWAY_NS}",
        *(f"link add sw-{n} type veth peer name eth0 netns {n}" for n in NODES),
        *(f"link set {p} master {SWITCH} up" for p in ["sw-gw", *(f"sw-{n}" for n in NODES)]),
    ])
    netns.ip_batch(GATEWAY_NS, [
        "link set lo up",
        "link set gw0 up",
        f"link add link gw0 name {GATEWAY_IF} type vlan id {VNET1.tag}",
        f"addr add {GATEWAY_IP4}/24 dev {GATEWAY_IF}",
        f"addr add {GATEWAY_IP6}/64 dev {GATEWAY_IF} nodad",
        f"link set {GATEWAY_IF} up",
    ])
    for i, n in enumerate(NODES, 1):
        netns.ip_batch(n, [f"link set eth0 address 02:00:00:00:0{i}:00"])


def guest_nic(g, gateway4=GATEWAY_IP4, gateway6=GATEWAY_IP6):
    """A guest's NIC: eth0 in its namespace (which must exist), with its
    addresses and default routes; the host side in its node's netns."""
    netns.ip_batch(g.node, [f"link add {g.nic} type veth peer name eth0 address {g.mac} netns {g.ns}"])
    netns.ip_batch(g.ns, [
        "link set lo up",
        f"addr add {g.ip4}/24 dev eth0",
        f"addr add {g.ip6}/64 dev eth0 nodad",
        "link set eth0 up",
        f"route add default via {gateway4}",
        f"route add default via {gateway6}",
    ])


def build_guests():
    """Each guest's namespace and NIC; its host side lands in the node's netns."""
    for g in GUESTS:
        guest_nic(g)
        # let a (spoofed) ARP update the neighbour entry at once, so an attack
        # that gets through is seen even right after a legitimate exchange
        netns.sysctl(g.ns, {"ipv4/neigh/eth0/locktime": 0})


def plug_guests(vnet=VNET1.name, nodes=NODES, create=True):
    """tap_plug: enslave each guest port to the VNet bridge.  With create=False
    only re-plug (after an ifreload: Debian's ifupdown2 unplugs bridge ports it
    does not know; Proxmox's fork leaves guest ports alone)."""
    for node in nodes:
        lines = []
        for g in (g for g in GUESTS if g.node == node):
            if g.kind == "fwpr":
                fwbr, fwln = f"fwbr{g.vmid}i0", f"fwln{g.vmid}i0"
                if create:
                    lines += [f"link add {fwbr} type bridge stp_state 0 forward_delay 0",
                              f"link add {g.port} type veth peer name {fwln}",
                              f"link set {fwbr} up", f"link set {fwln} master {fwbr} up",
                              f"link set {g.nic} master {fwbr} up"]
            lines += [f"link set {g.port} master {vnet} up", f"link set {g.nic} up"]
        netns.ip_batch(node, lines)


def settled(nodes, command):
    """Run an ifupdown2 command on every node of `nodes`, as `ifupdown`;
    return {node: "rc=N\n<output>"}.

    Debian's ifupdown2 3.0.0 sometimes enslaves a veth (pr_<vnet>) before its
    netlink cache has seen the link it just created ("bridge port pr_vnet1
    does not exist", rc=1), more often under software emulation.  That is
    ifupdown2 racing itself, not what we test: such a node runs the command
    once more (ifup/ifreload are idempotent), and both outputs are reported."""
    texts = {n: f"rc={r.returncode}\n{r.stdout}" for n, r in ifupdown(nodes, command).items()}
    again = [n for n in nodes if not texts[n].startswith("rc=0\n") and "does not exist" in texts[n]]
    if again:
        for n, r in ifupdown(again, command).items():
            texts[n] += f"(ifupdown2 raced itself; {command} again) rc={r.returncode}\n{r.stdout}"
    return texts


def ifup_all(nodes):
    """`ifup -a` on every node (boot); {node: "rc=N\n<output>"}.  A non-zero
    exit (e.g. a failing if-up.d hook) is reported, not raised; a node without
    its VNet bridge, or whose VNet is not on the uplink, is a harness error."""
    texts = settled(nodes, "ifup -a")
    uplink, trunk = f"pr_{VNET1.name}", f"{UPLINK_BRIDGE}v{VNET1.tag}"
    for n in nodes:
        if not _link_exists(n, VNET1.name):
            raise RuntimeError(f"ifup -a on {n} did not create {VNET1.name}:\n{texts[n]}")
        if _master(n, uplink) != trunk:
            raise RuntimeError(f"ifup -a on {n} left {uplink} outside {trunk}:\n{texts[n]}")
    return texts


def _master(ns, name):
    out = netns.run(["ip", "-n", ns, "-o", "link", "show", name], check=False).stdout
    parts = out.split()
    return parts[parts.index("master") + 1] if "master" in parts else None


def _link_exists(ns, name):
    return netns.run(["ip", "-n", ns, "link", "show", name], check=False).returncode == 0
