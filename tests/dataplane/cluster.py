"""The cluster-wide files under /etc/pve (pmxcfs) for the simulated cluster:
SDN config (a VLAN zone on vmbr0 with one VNet per VLAN) and microseg.yaml.

Inside the QEMU guest /etc/pve is a plain directory, shared by both nodes as
pmxcfs would be.
"""

import json
from pathlib import Path

from .topology import GATEWAY_MAC, UPLINK_BRIDGE, ZONE

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


def write(vnets, version=1, microseg=True):
    """Write /etc/pve as after `pvesh set /cluster/sdn` (and microseg.yaml)."""
    files = sdn_files(vnets, version)
    files[".version"] = json.dumps({"starttime": 1, "clinfo": 1, "vmlist": 1})
    if microseg:
        files["microseg.yaml"] = microseg_yaml(vnets)
    for rel, text in files.items():
        p = PVE / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
