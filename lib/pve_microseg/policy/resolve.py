"""Which bridges pve-microseg manages, resolved against SDN (pure).

The BridgeSpecs of microseg.yaml and of the article's legacy file are
combined (microseg.yaml wins per bridge; the legacy lines of such a bridge
are ignored with a warning), then each is resolved: an SDN VNet's gateway
addresses default to its subnets' gateways, every given gateway address must
lie inside the bridge's subnets (and be neither their network nor broadcast
address), and every gateway MAC's EUI-64 link-local
address is added.  Errors name the file, the line and the field.

In SDN Simple and EVPN zones the node itself is the gateway: the subnet
gateway address sits on the VNet bridge of every node.  There the gateway
MAC is not needed (Simple: the node's own frames to a guest leave the bridge
through its output path, which the forward chains never see) or is the
zone's anycast `mac`, the same on every node (EVPN); both are taken from SDN
unless microseg.yaml names one.
"""

from ..model.bridge import DEFAULT_INTRA_VNET_ROUTING, DEFAULT_PORT_SECURITY, Gateway, ManagedBridge
from ..model.config import Config, Document
from ..model.errors import ConfigError
from ..parse import addresses


def _unique(values):
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return tuple(out)


def _gateway_macs(spec, zone):
    """The gateway MACs microseg.yaml names, else those SDN implies for a
    zone where the node is the gateway, else ConfigError."""
    if spec.macs:
        return _unique(m for m, _ in spec.macs)
    if zone is not None and zone.routed:
        return (zone.mac,) if zone.type == "evpn" and zone.mac else ()
    raise ConfigError(spec.path, spec.line, spec.mac_field,
                      "missing: the MAC address(es) of the router on this bridge "
                      "(several for VRRP/anycast routers)")


def resolve(spec, sdn, default_port_security=None, default_intra_vnet_routing=None):
    """BridgeSpec + SDN config -> ManagedBridge, or ConfigError."""
    is_vnet = spec.name in sdn.vnets
    zone = sdn.zone_of(spec.name) if is_vnet else None
    sdn_subnets = sdn.subnets_of(spec.name) if is_vnet else []
    subnets = [n for n, _ in spec.subnets] or [s.network for s in sdn_subnets]
    macs = _gateway_macs(spec, zone)
    if spec.ips_given:
        ips = [ip for ip, _ in spec.ips]
        for ip, line in spec.ips:
            if ip.is_link_local or not subnets:
                continue
            if not any(ip.version == n.version and ip in n for n in subnets):
                nets = ", ".join(str(n) for n in subnets)
                raise ConfigError(spec.path, line, spec.ip_field,
                                  f"{ip} is outside every subnet of {spec.name} ({nets})")
            why = addresses.subnet_role(ip, subnets)
            if why:
                raise ConfigError(spec.path, line, spec.ip_field, f"{why}: not a router's address")
    else:
        ips = [s.gateway for s in sdn_subnets if s.gateway is not None]
        if not ips:
            why = (f"SDN VNet {spec.name} has no subnet with a gateway" if is_vnet
                   else f"{spec.name} is not an SDN VNet, so there is no subnet gateway to default to")
            raise ConfigError(spec.path, spec.line, spec.ip_field,
                              f"missing: {why}; name the gateway address(es)")

    # Routers answer ND and send RAs from their link-local address; guests
    # need to resolve it (default route via fe80::…).  Linux routers use the
    # EUI-64 address of their MAC unless configured otherwise.
    link_locals = [addresses.eui64_link_local(m) for m in macs]
    ipv4 = _unique(ip for ip in ips if ip.version == 4)
    ipv6 = _unique([ip for ip in ips if ip.version == 6] + link_locals)
    return ManagedBridge(
        name=spec.name,
        gateway=Gateway(macs=macs, ipv4=ipv4, ipv6=ipv6),
        source=f"{spec.path}:{spec.line}",
        vnet=is_vnet,
        subnets=tuple(subnets),
        isolate_ports=spec.isolate_ports,
        port_security=spec.port_security or default_port_security or DEFAULT_PORT_SECURITY,
        intra_vnet_routing=spec.intra_vnet_routing or default_intra_vnet_routing or DEFAULT_INTRA_VNET_ROUTING,
        zone=zone.id if zone else None,
        zone_type=zone.type if zone else None,
        node_is_gateway=bool(zone and zone.routed),
    )


def combine(yaml_specs, legacy_specs):
    """microseg.yaml wins per bridge; returns (specs, warnings)."""
    warnings = []
    by_name = {s.name: s for s in yaml_specs}
    for spec in legacy_specs:
        if spec.name in by_name:
            mine = by_name[spec.name]
            warnings.append(f"{spec.path}:{spec.line}: bridge {spec.name} is also configured in "
                            f"{mine.path}:{mine.line}; the legacy lines are ignored")
            continue
        by_name[spec.name] = spec
    return [by_name[n] for n in sorted(by_name)], warnings


def config(doc, legacy_specs, sdn):
    """Document (microseg.yaml) + the legacy file's specs + SDN -> Config, or ConfigError."""
    doc = doc or Document()
    specs, warnings = combine(doc.bridges, legacy_specs)
    bridges = tuple(resolve(s, sdn, doc.port_security, doc.intra_vnet_routing) for s in specs)
    return Config(bridges=bridges, warnings=tuple(warnings),
                  hookscript=doc.hookscript, guests=dict(doc.guests), log=doc.log)
