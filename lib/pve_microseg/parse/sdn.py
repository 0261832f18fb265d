"""Parse Proxmox SDN configuration: which VNets exist, their zones and subnets.

The applied state is `/etc/pve/sdn/.running-config` (JSON, written by an SDN
apply); the bridges on a node come from it, so it is preferred.  Before the
first apply only the pending SectionConfig files exist (`vnets.cfg`,
`subnets.cfg`, `zones.cfg`); they are read as a fallback.
"""

import ipaddress
import json
import re

from ..model.errors import SdnConfigError
from ..model.sdn import SdnConfig, Subnet, Zone
from . import addresses
from .sectionconfig import parse_section_config


_SUBNET_ID = re.compile(r"^([A-Za-z][A-Za-z0-9]*)-(.+)-(\d{1,3})$")


def parse_subnet_id(subnet_id):
    """`myzone-10.0.0.0-24` -> IPv4Network('10.0.0.0/24'); None if malformed."""
    m = _SUBNET_ID.match(subnet_id)
    if not m:
        return None
    try:
        return ipaddress.ip_network(f"{m.group(2)}/{m.group(3)}", strict=False)
    except ValueError:
        return None


def _subnet(path, line, subnet_id, props, lines=None):
    lines = lines or {}
    network = parse_subnet_id(subnet_id)
    if network is None:
        raise SdnConfigError(path, line, f"subnet {subnet_id}",
                             "id is not <zone>-<address>-<prefix length>")
    vnet = props.get("vnet")
    if not vnet:
        raise SdnConfigError(path, line, f"subnet {subnet_id}", "has no 'vnet'")
    gateway = props.get("gateway")
    if gateway not in (None, ""):
        try:
            gateway = ipaddress.ip_address(str(gateway))
        except ValueError:
            raise SdnConfigError(path, lines.get("gateway", line), f"subnet {subnet_id}.gateway",
                                 f"{gateway!r} is not an IP address") from None
    else:
        gateway = None
    return Subnet(id=subnet_id, vnet=str(vnet), network=network, gateway=gateway)


def _zone(path, line, zone_id, zone_type, props, lines=None):
    mac = props.get("mac")
    if mac not in (None, ""):
        try:
            mac = addresses.parse_mac(str(mac))
        except ValueError as e:
            raise SdnConfigError(path, (lines or {}).get("mac", line), f"zone {zone_id}.mac", str(e)) from None
    else:
        mac = None
    return Zone(id=zone_id, type=str(zone_type), mac=mac)


def parse_running_config(text, path=".running-config"):
    """Parse the JSON of `/etc/pve/sdn/.running-config`."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise SdnConfigError(path, getattr(e, "lineno", None), None,
                             f"not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise SdnConfigError(path, None, None, "expected a JSON object")

    def ids(section):
        value = (data.get(section) or {}).get("ids") or {}
        if not isinstance(value, dict):
            raise SdnConfigError(path, None, f"{section}.ids", "expected an object")
        return value

    def props(value):
        return value if isinstance(value, dict) else {}

    vnets = frozenset(ids("vnets"))
    subnets = tuple(_subnet(path, None, sid, props(p)) for sid, p in sorted(ids("subnets").items()))
    zones = {zid: _zone(path, None, zid, props(p).get("type", ""), props(p)) for zid, p in ids("zones").items()}
    vnet_zones = {v: str(props(p)["zone"]) for v, p in ids("vnets").items() if props(p).get("zone")}
    return SdnConfig(vnets=vnets, subnets=subnets, source=str(path), zones=zones, vnet_zones=vnet_zones)


def parse_pending_config(vnets_text, subnets_text, vnets_path, subnets_path, zones_text="",
                         zones_path="zones.cfg"):
    vnet_sections = [sec for sec in parse_section_config(vnets_text, vnets_path, SdnConfigError)
                     if sec.type == "vnet"]
    subnets = tuple(_subnet(subnets_path, sec.line, sec.id, sec.props, sec.lines)
                    for sec in parse_section_config(subnets_text, subnets_path, SdnConfigError)
                    if sec.type == "subnet")
    zones = {sec.id: _zone(zones_path, sec.line, sec.id, sec.type, sec.props, sec.lines)
             for sec in parse_section_config(zones_text, zones_path, SdnConfigError)}
    return SdnConfig(vnets=frozenset(sec.id for sec in vnet_sections), subnets=subnets, source=str(subnets_path),
                     zones=zones, vnet_zones={sec.id: sec.props["zone"] for sec in vnet_sections
                                              if sec.props.get("zone")})
