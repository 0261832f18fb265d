"""Read Proxmox SDN configuration: which VNets exist and their subnets.

The applied state is `/etc/pve/sdn/.running-config` (JSON, written by an SDN
apply); the bridges on a node come from it, so it is preferred.  Before the
first apply only the pending SectionConfig files exist (`vnets.cfg`,
`subnets.cfg`); they are read as a fallback.
"""

import ipaddress
import json
import re
from dataclasses import dataclass

from .errors import SdnConfigError


@dataclass(frozen=True)
class Subnet:
    id: str
    vnet: str
    network: object            # ipaddress.IPv4Network | IPv6Network
    gateway: object = None     # ipaddress.IPv4Address | IPv6Address | None


@dataclass(frozen=True)
class SdnConfig:
    vnets: frozenset
    subnets: tuple
    source: str = ""

    def subnets_of(self, vnet):
        return [s for s in self.subnets if s.vnet == vnet]


EMPTY = SdnConfig(vnets=frozenset(), subnets=())

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

    vnets = frozenset(ids("vnets"))
    subnets = tuple(_subnet(path, None, sid, props if isinstance(props, dict) else {})
                    for sid, props in sorted(ids("subnets").items()))
    return SdnConfig(vnets=vnets, subnets=subnets, source=str(path))


_HEADER = re.compile(r"^(\S+):\s*(\S+)\s*$")


def parse_section_config(text, path):
    """Parse a Proxmox SectionConfig file into [(type, id, line, {key: value}, {key: line})].

    Header `<type>: <id>` at column 0, properties indented `key value`, a
    section ends at the first empty line, `#` lines are comments.
    """
    sections = []
    current = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not line.strip():
            current = None
            continue
        if line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            m = _HEADER.match(line)
            if not m:
                raise SdnConfigError(path, lineno, None,
                                     f"expected '<type>: <id>', got {line!r}")
            current = (m.group(1), m.group(2), lineno, {}, {})
            sections.append(current)
            continue
        if current is None:
            raise SdnConfigError(path, lineno, None, "property outside of a section")
        key, _, value = line.strip().partition(" ")
        current[3].setdefault(key, value.strip())
        current[4].setdefault(key, lineno)
    return sections


def parse_pending_config(vnets_text, subnets_text, vnets_path, subnets_path):
    vnets = frozenset(sec[1] for sec in parse_section_config(vnets_text, vnets_path)
                      if sec[0] == "vnet")
    subnets = tuple(_subnet(subnets_path, line, sid, props, lines)
                    for typ, sid, line, props, lines in parse_section_config(subnets_text, subnets_path)
                    if typ == "subnet")
    return SdnConfig(vnets=vnets, subnets=subnets, source=str(subnets_path))


def _read(path):
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SdnConfigError(path, None, None, f"cannot read: {e.strerror}") from None


def load(paths):
    """The SDN configuration as this node applied it (or will apply it)."""
    text = _read(paths.sdn_running_config)
    if text is not None:
        return parse_running_config(text, paths.sdn_running_config)
    vnets_text = _read(paths.sdn_vnets)
    subnets_text = _read(paths.sdn_subnets)
    if vnets_text is None and subnets_text is None:
        return EMPTY
    return parse_pending_config(vnets_text or "", subnets_text or "",
                                paths.sdn_vnets, paths.sdn_subnets)
