"""Read and validate which bridges pve-microseg manages.

Two cluster-wide files on pmxcfs:

* `/etc/pve/microseg.yaml` — ours:

      bridges:
        web:                                  # an SDN VNet or a Linux bridge
          gateway-mac: 00:00:5e:00:01:64      # one, or a list (VRRP/anycast)
          gateway-ip: [10.100.0.1, 2001:db8:100::1]   # VNets: default = subnet gateways

* `/etc/pve/L2-microsegmentation.conf` — the legacy file of the article's
  scripts, `BRIDGE;GATEWAY_IP;GATEWAY_MAC` per line, `#` comments.  Lines for
  the same bridge add up (several gateways).  A bridge named in
  microseg.yaml is taken from there only; its legacy lines are ignored with
  a warning.

Errors name the file, the line and the field, and nothing is applied.
"""

import functools
import ipaddress
import json
import os
import re
from dataclasses import asdict, dataclass, field

from . import __version__, addresses
from .errors import ConfigError
from .model import Gateway, GuestSettings, HookscriptSettings, ManagedBridge

_IFNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")
_GUEST_PORT = re.compile(r"^(tap|veth|fwpr|fwbr|fwln)\d")
TOP_LEVEL_KEYS = ("bridges", "hookscript", "guests")
BRIDGE_KEYS = ("gateway-mac", "gateway-ip", "subnets", "isolate-ports", "vnet-firewall-before")
VNET_FIREWALL_BEFORE_KEYS = ("enable", "policy_forward", "added-bridge", "enabled-datacenter-firewall")
HOOKSCRIPT_KEYS = ("on-failure", "strict", "chain", "policy-in")
GUEST_KEYS = ("net<N>", "chain", "policy-in")


@dataclass
class BridgeSpec:
    """One bridge as written in a file, before SDN defaults are applied."""

    name: str
    path: str
    line: int
    macs: list = field(default_factory=list)        # [(mac, line)]
    ips: list = field(default_factory=list)         # [(ip, line)]
    subnets: list = field(default_factory=list)     # [(network, line)]
    ips_given: bool = False
    isolate_ports: bool = False
    vnet_firewall_before: dict = None   # written by `vnet enable`, read by `vnet disable`
    mac_field: str = "gateway-mac"      # how the file calls the fields, for messages
    ip_field: str = "gateway-ip"


@dataclass(frozen=True)
class Document:
    """microseg.yaml, parsed and validated but not yet resolved against SDN."""

    bridges: list = field(default_factory=list)             # BridgeSpec
    hookscript: HookscriptSettings = HookscriptSettings()
    guests: dict = field(default_factory=dict)              # vmid -> GuestSettings


@dataclass(frozen=True)
class Config:
    bridges: tuple          # ManagedBridge, sorted by name
    warnings: tuple = ()
    hookscript: HookscriptSettings = HookscriptSettings()
    guests: dict = field(default_factory=dict)              # vmid -> GuestSettings

    def bridge(self, name):
        for b in self.bridges:
            if b.name == name:
                return b
        return None

    @property
    def names(self):
        return frozenset(b.name for b in self.bridges)

    # computed once per configuration: checked for every guest (status reads thousands)
    @functools.cached_property
    def bridge_map(self):
        return {b.name: b for b in self.bridges}

    @functools.cached_property
    def gateway_ips(self):
        return frozenset(ip for b in self.bridges for ip in b.gateway.ips)

    @functools.cached_property
    def gateway_macs(self):
        return frozenset(m for b in self.bridges for m in b.gateway.macs)


def check_ifname(name, path, line, field_name):
    if not isinstance(name, str) or not _IFNAME.match(name) or name in (".", ".."):
        raise ConfigError(path, line, field_name,
                          f"{name!r} is not a valid interface name (1-15 characters "
                          "of letters, digits, '_', '.', '-')")
    if _GUEST_PORT.match(name):
        raise ConfigError(path, line, field_name,
                          f"{name!r} is a guest port name (tap/veth/fwpr/fwbr/fwln), "
                          "not a bridge guests are plugged into")
    return name


# ---------------------------------------------------------------- YAML file

def parse_yaml(text, path="microseg.yaml"):
    """Parse microseg.yaml -> [BridgeSpec].  Raises ConfigError."""
    return parse_document(text, path).bridges


def parse_document(text, path="microseg.yaml"):
    """Parse microseg.yaml -> Document.  Raises ConfigError.

    PyYAML costs ~15 ms to import, a quarter of the guest hookscript's
    budget, so it is imported only here (see load_document's cache)."""
    from . import yamlfile
    return yamlfile.parse_document(text, path)


# ------------------------------------------------- cache of the parsed file

def _document_to_json(doc):
    def spec(b):
        d = asdict(b)
        d["ips"] = [(str(ip), line) for ip, line in b.ips]
        d["subnets"] = [(str(n), line) for n, line in b.subnets]
        return d
    return {"bridges": [spec(b) for b in doc.bridges], "hookscript": asdict(doc.hookscript),
            "guests": [dict(asdict(g), addresses=[[i, list(a)] for i, a in g.addresses.items()])
                       for g in doc.guests.values()]}


def _document_from_json(data):
    bridges = []
    for d in data["bridges"]:
        d = dict(d, macs=[tuple(m) for m in d["macs"]],
                 ips=[(ipaddress.ip_address(ip), line) for ip, line in d["ips"]],
                 subnets=[(ipaddress.ip_network(n), line) for n, line in d["subnets"]])
        bridges.append(BridgeSpec(**d))
    guests = {g["vmid"]: GuestSettings(**dict(g, addresses={i: tuple(a) for i, a in g["addresses"]}))
              for g in data["guests"]}
    return Document(bridges=bridges, hookscript=HookscriptSettings(**data["hookscript"]), guests=guests)


def load_document(paths, text):
    """parse_document, through a cache in the run directory keyed by the
    file's exact text: the guest hookscript then does not load PyYAML."""
    cache = paths.run_dir / "microseg.yaml.json"
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
        if data["version"] == __version__ and data["text"] == text:
            return _document_from_json(data["document"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    doc = parse_document(text, paths.config)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"version": __version__, "text": text,
                                   "document": _document_to_json(doc)}), encoding="utf-8")
        os.replace(tmp, cache)
    except OSError:
        pass                    # a read-only /run costs only the YAML parse next time
    return doc


def _parse_network(text):
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not a subnet (expected CIDR like 10.100.0.0/24)") from None


def _parsed(items, parse, path, field_name):
    out = []
    many = len(items) > 1
    for i, (text, line) in enumerate(items):
        try:
            out.append((parse(text), line))
        except ValueError as e:
            raise ConfigError(path, line, f"{field_name}[{i}]" if many else field_name,
                              str(e)) from None
    return out


# -------------------------------------------------------------- legacy file

def parse_legacy(text, path="L2-microsegmentation.conf"):
    """Parse the article's `BRIDGE;GATEWAY_IP;GATEWAY_MAC` file -> [BridgeSpec]."""
    specs = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(";")]
        if len(parts) != 3:
            raise ConfigError(path, lineno, None,
                              f"expected BRIDGE;GATEWAY_IP;GATEWAY_MAC, got {line!r}")
        bridge, ip, mac = parts
        check_ifname(bridge, path, lineno, "BRIDGE")
        try:
            ip = addresses.parse_ip(ip)
        except ValueError as e:
            raise ConfigError(path, lineno, "GATEWAY_IP", str(e)) from None
        try:
            mac = addresses.parse_mac(mac)
        except ValueError as e:
            raise ConfigError(path, lineno, "GATEWAY_MAC", str(e)) from None
        spec = specs.setdefault(bridge, BridgeSpec(name=bridge, path=str(path), line=lineno,
                                                   mac_field="GATEWAY_MAC", ip_field="GATEWAY_IP"))
        spec.ips.append((ip, lineno))
        spec.macs.append((mac, lineno))
        spec.ips_given = True
    return list(specs.values())


# ----------------------------------------------------------- resolution

def _unique(values):
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return tuple(out)


def resolve(spec, sdn):
    """BridgeSpec + SDN config -> ManagedBridge, or ConfigError."""
    is_vnet = spec.name in sdn.vnets
    sdn_subnets = sdn.subnets_of(spec.name) if is_vnet else []
    subnets = [n for n, _ in spec.subnets] or [s.network for s in sdn_subnets]

    if not spec.macs:
        raise ConfigError(spec.path, spec.line, spec.mac_field,
                          "missing: the MAC address(es) of the router on this bridge "
                          "(several for VRRP/anycast routers)")
    if spec.ips_given:
        ips = [ip for ip, _ in spec.ips]
        for ip, line in spec.ips:
            if ip.is_link_local or not subnets:
                continue
            if not any(ip.version == n.version and ip in n for n in subnets):
                nets = ", ".join(str(n) for n in subnets)
                raise ConfigError(spec.path, line, spec.ip_field,
                                  f"{ip} is outside every subnet of {spec.name} ({nets})")
    else:
        ips = [s.gateway for s in sdn_subnets if s.gateway is not None]
        if not ips:
            why = (f"SDN VNet {spec.name} has no subnet with a gateway" if is_vnet
                   else f"{spec.name} is not an SDN VNet, so there is no subnet gateway to default to")
            raise ConfigError(spec.path, spec.line, spec.ip_field,
                              f"missing: {why}; name the gateway address(es)")

    macs = _unique(m for m, _ in spec.macs)
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


def _read(path):
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as e:
        raise ConfigError(path, None, None, f"not UTF-8 text: {e}") from None
    except OSError as e:
        raise ConfigError(path, None, None, f"cannot read: {e.strerror}") from None


def load(paths, sdn):
    """Read both files and resolve them against the SDN config -> Config."""
    text = _read(paths.config)
    doc = load_document(paths, text) if text is not None else Document()
    text = _read(paths.legacy_config)
    legacy_specs = parse_legacy(text, paths.legacy_config) if text is not None else []
    specs, warnings = combine(doc.bridges, legacy_specs)
    bridges = tuple(resolve(s, sdn) for s in specs)
    return Config(bridges=bridges, warnings=tuple(warnings), hookscript=doc.hookscript,
                  guests=dict(doc.guests))
