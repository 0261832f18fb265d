"""The cluster-wide files under /etc/pve (pmxcfs) for the simulated cluster:
SDN config (a VLAN zone on vmbr0 with one VNet per VLAN), the guests' configs
and .vmlist (their NICs, MACs and static addresses: what port security binds
each port to), and microseg.yaml.

Inside the QEMU guest /etc/pve is a plain directory, shared by both nodes as
pmxcfs would be.
"""

import json
from pathlib import Path

from .topology import GATEWAY_MAC, GUESTS, UPLINK_BRIDGE, VNET1, ZONE

PVE = Path("/etc/pve")


def microseg_yaml(vnets):
    out = "bridges:\n"
    for v in vnets:
        out += (f"  {v.name}:\n"
                f"    gateway-mac: {GATEWAY_MAC}\n"
                f"    gateway-ip: [{', '.join(v.gateway_ips)}]\n")
    return out


def _subnets(v):
    return {f"{ZONE}-{v.subnet4}.0-24": {"vnet": v.name, "gateway": f"{v.subnet4}.1"},
            f"{ZONE}-{v.subnet6}:-64": {"vnet": v.name, "gateway": f"{v.subnet6}:1"}}


def sdn_files(vnets, version):
    """{relative path: content} of /etc/pve/sdn for these VNets."""
    zones = f"vlan: {ZONE}\n\tbridge {UPLINK_BRIDGE}\n\tipam pve\n"
    vnets_cfg = "\n".join(f"vnet: {v.name}\n\tzone {ZONE}\n\ttag {v.tag}\n" for v in vnets)
    subnets = {k: s for v in vnets for k, s in _subnets(v).items()}
    subnets_cfg = "\n".join(f"subnet: {k}\n\tvnet {s['vnet']}\n\tgateway {s['gateway']}\n"
                            for k, s in subnets.items())
    running = {
        "version": version,
        "zones": {"ids": {ZONE: {"type": "vlan", "bridge": UPLINK_BRIDGE, "ipam": "pve"}}},
        "vnets": {"ids": {v.name: {"type": "vnet", "zone": ZONE, "tag": v.tag} for v in vnets}},
        "subnets": {"ids": {k: {"type": "subnet", **s} for k, s in subnets.items()}},
        "controllers": {"ids": {}},
    }
    return {"sdn/zones.cfg": zones, "sdn/vnets.cfg": vnets_cfg, "sdn/subnets.cfg": subnets_cfg,
            "sdn/.running-config": json.dumps(running)}


def guest_files():
    """{relative path: content}: each guest's config on its node, and .vmlist.
    VMs (tap, fwpr) carry cloud-init addresses, containers ip=/ip6=."""
    files, ids = {}, {}
    for g in GUESTS:
        if g.kind == "veth":
            net = (f"name=eth0,bridge={VNET1.name},firewall=1,hwaddr={g.mac.upper()},"
                   f"ip={g.ip4}/24,ip6={g.ip6}/64,type=veth")
            files[f"nodes/{g.node}/lxc/{g.vmid}.conf"] = f"arch: amd64\nhostname: g{g.vmid}\nnet0: {net}\n"
            ids[str(g.vmid)] = {"node": g.node, "type": "lxc", "version": g.vmid}
        else:
            firewall = 1 if g.kind == "fwpr" else 0
            files[f"nodes/{g.node}/qemu-server/{g.vmid}.conf"] = (
                f"ipconfig0: ip={g.ip4}/24,gw={VNET1.subnet4}.1,ip6={g.ip6}/64\n"
                f"net0: virtio={g.mac.upper()},bridge={VNET1.name},firewall={firewall}\n")
            ids[str(g.vmid)] = {"node": g.node, "type": "qemu", "version": g.vmid}
    files[".vmlist"] = json.dumps({"version": 1, "ids": ids})
    return files


def write(vnets, version=1, microseg=True):
    """Write /etc/pve as after `pvesh set /cluster/sdn` (and microseg.yaml)."""
    files = sdn_files(vnets, version)
    files.update(guest_files())
    files[".version"] = json.dumps({"starttime": 1, "clinfo": 1, "vmlist": 1})
    if microseg:
        files["microseg.yaml"] = microseg_yaml(vnets)
    for rel, text in files.items():
        p = PVE / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
