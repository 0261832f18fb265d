"""Guest addresses recorded in Proxmox's own IPAM (pve-network's "pve" plugin).

The state lives in `/etc/pve/sdn/pve-ipam-state.json` (libpve-network-perl
>= 0.9.9) or, on older nodes, `/etc/pve/priv/ipam.db`; both have one shape:

    {"zones": {"<zone>": {"subnets": {"<cidr>": {"ips": {
        "<ip>": {"vmid": "101", "mac": "BC:24:11:11:22:33", "hostname": "web1"},
        "<ip>": {"gateway": 1}}}}}}}

Only zones with both an IPAM and DHCP (Simple zones) hold guest addresses;
VLAN zones hold gateways only.  `vmid` is a string; entries without a MAC
cannot be tied to a NIC and are ignored.
"""

import json

from ..model.errors import ConfigError
from ..model.ipam import IpamState, canonical_address
from . import addresses, names


def _vmid_key(value):
    """An entry's `vmid` as a canonical string ("0101" and 101 -> "101"); any
    other text as it is (it then names no guest, and owns its address)."""
    text = str(value).strip()
    if text.isascii() and text.isdigit():
        canonical = names.vmid_or_none(text.lstrip("0"))
        if canonical is not None:
            return str(canonical)
    return text


def parse(text, path="pve-ipam-state.json", vmid=None):
    """IPAM JSON -> IpamState; with `vmid` (one VMID or a collection of them),
    only those guests' entries are validated (the guest hookscript's cost must
    not grow with the cluster).  Addresses and VMIDs are canonicalised, so an
    IPv6 key written in upper case or with leading zeros is found."""
    if vmid is None:
        wanted = None
    elif isinstance(vmid, (set, frozenset, list, tuple)):
        wanted = {str(v) for v in vmid}
    else:
        wanted = {str(vmid)}
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ConfigError(path, getattr(e, "lineno", None), None, f"not valid JSON: {e.msg}") from None
    found, owners = {}, {}
    try:
        zones = data.get("zones") if isinstance(data, dict) else None
        for zone in (zones or {}).values():
            for subnet in ((zone or {}).get("subnets") or {}).values():
                for ip, entry in ((subnet or {}).get("ips") or {}).items():
                    if not isinstance(entry, dict) or entry.get("vmid") in (None, ""):
                        continue
                    owner = owners[canonical_address(ip)] = _vmid_key(entry["vmid"])
                    if not entry.get("mac") or (wanted is not None and owner not in wanted):
                        continue
                    try:
                        mac = addresses.parse_mac(entry["mac"])
                        ip = str(addresses.parse_ip(ip))
                    except ValueError:
                        continue
                    if ip not in found.setdefault((owner, mac), []):
                        found[(owner, mac)].append(ip)
    except (AttributeError, TypeError) as e:
        raise ConfigError(path, None, "zones", f"unexpected structure ({e}); expected "
                          '{"zones": {<zone>: {"subnets": {<cidr>: {"ips": {<ip>: {...}}}}}}}') from None
    return IpamState(path=str(path), by_guest={k: tuple(v) for k, v in found.items()}, owners=owners)
