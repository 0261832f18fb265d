"""The cluster-wide files under /etc/pve (pmxcfs) for the simulated cluster:
SDN config (a VLAN zone on vmbr0 with one VNet per VLAN), the guests' configs
and .vmlist (their NICs, MACs and static addresses: what port security binds
each port to), and microseg.yaml.

Inside the QEMU guest /etc/pve is a plain directory, shared by both nodes as
pmxcfs would be.
"""

import json
from pathlib import Path

from .topology import (ANYCAST_MAC, GATEWAY_MAC, GUESTS, ROUTED_GW4, ROUTED_GW6, ROUTED_VNET, ROUTED_VNI,
                       ROUTED_ZONE, UPLINK_BRIDGE, VNET1, ZONE)

PVE = Path("/etc/pve")


def microseg_yaml(vnets):
    out = "bridges:\n"
    for v in vnets:
        out += (f"  {v.name}:\n"
                f"    gateway-mac: {GATEWAY_MAC}\n"
                f"    gateway-ip: [{', '.join(v.gateway_ips)}]\n")
    # the node is the gateway: MAC and addresses come from SDN
    from .vlantag import microseg_yaml as vlantag_yaml
    return out + f"  {ROUTED_VNET}:\n" + vlantag_yaml()


def _subnets(v):
    return {f"{ZONE}-{v.subnet4}.0-24": {"vnet": v.name, "gateway": f"{v.subnet4}.1"},
            f"{ZONE}-{v.subnet6}:-64": {"vnet": v.name, "gateway": f"{v.subnet6}:1"}}


def sdn_files(vnets, version):
    """{relative path: content} of /etc/pve/sdn for these VNets."""
    zones = (f"vlan: {ZONE}\n\tbridge {UPLINK_BRIDGE}\n\tipam pve\n\n"
             f"evpn: {ROUTED_ZONE}\n\tcontroller evpnctl\n\tvrf-vxlan 10000\n\tmac {ANYCAST_MAC}\n\tipam pve\n")
    vnets_cfg = "\n".join(f"vnet: {v.name}\n\tzone {ZONE}\n\ttag {v.tag}\n" for v in vnets)
    vnets_cfg += f"\nvnet: {ROUTED_VNET}\n\tzone {ROUTED_ZONE}\n\ttag {ROUTED_VNI}\n"
    subnets = {k: s for v in vnets for k, s in _subnets(v).items()}
    subnets.update({f"{ROUTED_ZONE}-10.200.0.0-24": {"vnet": ROUTED_VNET, "gateway": ROUTED_GW4},
                    f"{ROUTED_ZONE}-2001:db8:200::-64": {"vnet": ROUTED_VNET, "gateway": ROUTED_GW6}})
    subnets_cfg = "\n".join(f"subnet: {k}\n\tvnet {s['vnet']}\n\tgateway {s['gateway']}\n"
                            for k, s in subnets.items())
    running = {
        "version": version,
        "zones": {"ids": {ZONE: {"type": "vlan", "bridge": UPLINK_BRIDGE, "ipam": "pve"},
                          ROUTED_ZONE: {"type": "evpn", "controller": "evpnctl", "vrf-vxlan": 10000,
                                        "mac": ANYCAST_MAC, "ipam": "pve"}}},
        "vnets": {"ids": {**{v.name: {"type": "vnet", "zone": ZONE, "tag": v.tag} for v in vnets},
                          ROUTED_VNET: {"type": "vnet", "zone": ROUTED_ZONE, "tag": ROUTED_VNI}}},
        "subnets": {"ids": {k: {"type": "subnet", **s} for k, s in subnets.items()}},
        "controllers": {"ids": {}},
    }
    return {"sdn/zones.cfg": zones, "sdn/vnets.cfg": vnets_cfg, "sdn/subnets.cfg": subnets_cfg,
            "sdn/.running-config": json.dumps(running)}


def guest_files():
    """{relative path: content}: each guest's config on its node, and .vmlist.
    VMs (tap, fwpr) carry cloud-init addresses, containers ip=/ip6=."""
    from .routed import ROUTED_GUESTS
    from .vlantag import TAGGED_GUESTS
    files, ids = {}, {}
    for g in GUESTS + ROUTED_GUESTS + TAGGED_GUESTS:
        bridge = g.bridge + (f",tag={g.tag}" if getattr(g, "tag", None) else "")
        if g.kind == "veth":
            net = (f"name=eth0,bridge={bridge},firewall=1,hwaddr={g.mac.upper()},"
                   f"ip={g.ip4}/24,ip6={g.ip6}/64,type=veth")
            files[f"nodes/{g.node}/lxc/{g.vmid}.conf"] = f"arch: amd64\nhostname: g{g.vmid}\nnet0: {net}\n"
            ids[str(g.vmid)] = {"node": g.node, "type": "lxc", "version": g.vmid}
        else:
            firewall = 1 if g.kind == "fwpr" else 0
            files[f"nodes/{g.node}/qemu-server/{g.vmid}.conf"] = (
                f"ipconfig0: ip={g.ip4}/24,gw={g.gateway4},ip6={g.ip6}/64\n"
                f"net0: virtio={g.mac.upper()},bridge={bridge},firewall={firewall}\n")
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
