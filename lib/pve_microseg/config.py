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

import ipaddress
import re
from dataclasses import dataclass, field

import yaml

from . import addresses
from .errors import ConfigError
from .model import Gateway, GuestSettings, HookscriptSettings, ManagedBridge

_IFNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")
_GUEST_PORT = re.compile(r"^(tap|veth|fwpr|fwbr|fwln)\d")
TOP_LEVEL_KEYS = ("bridges", "hookscript", "guests")
BRIDGE_KEYS = ("gateway-mac", "gateway-ip", "subnets", "isolate-ports")
HOOKSCRIPT_KEYS = ("on-failure", "strict", "chain", "policy-in")
GUEST_KEYS = ("net<N>", "chain", "policy-in")
_NET_KEY = re.compile(r"^net([0-9]|[12][0-9]|3[01])$")
_POLICIES = ("ACCEPT", "DROP", "REJECT")


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

def _line(node):
    return node.start_mark.line + 1


def _scalars(node, path, field_name):
    """A scalar or a sequence of scalars -> [(text, line)]."""
    if isinstance(node, yaml.ScalarNode):
        if node.value == "" or node.tag == "tag:yaml.org,2002:null":
            return []
        return [(node.value, _line(node))]
    if isinstance(node, yaml.SequenceNode):
        out = []
        for i, item in enumerate(node.value):
            if not isinstance(item, yaml.ScalarNode):
                raise ConfigError(path, _line(item), f"{field_name}[{i}]",
                                  "expected an address, got a nested structure")
            out.append((item.value, _line(item)))
        return out
    raise ConfigError(path, _line(node), field_name, "expected an address or a list of addresses")


def _mapping(node, path, field_name):
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
        return []
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(path, _line(node), field_name, "expected a mapping (key: value)")
    seen = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            raise ConfigError(path, _line(key), field_name, "keys must be plain names")
        if key.value in seen:
            raise ConfigError(path, _line(key), f"{field_name}.{key.value}" if field_name else key.value,
                              f"duplicate key (first on line {seen[key.value]})")
        seen[key.value] = _line(key)
    return node.value


def _unknown(key, allowed, path, field_name):
    raise ConfigError(path, _line(key), field_name,
                      f"unknown key {key.value!r} (expected one of: {', '.join(allowed)})")


def parse_yaml(text, path="microseg.yaml"):
    """Parse microseg.yaml -> [BridgeSpec].  Raises ConfigError."""
    return parse_document(text, path).bridges


def parse_document(text, path="microseg.yaml"):
    """Parse microseg.yaml -> Document.  Raises ConfigError."""
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        root = yaml.compose(text, Loader=loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(path, line, None,
                          f"not valid YAML: {getattr(e, 'problem', None) or e}") from None
    doc = Document()
    if root is None:
        return doc
    for key, value in _mapping(root, path, ""):
        if key.value == "bridges":
            doc.bridges.extend(_bridges(value, path))
        elif key.value == "hookscript":
            doc = Document(bridges=doc.bridges, hookscript=_hookscript(value, path), guests=doc.guests)
        elif key.value == "guests":
            doc.guests.update(_guests(value, path))
        else:
            _unknown(key, TOP_LEVEL_KEYS, path, key.value)
    return doc


def _bridges(node, path):
    specs = []
    for bkey, bvalue in _mapping(node, path, "bridges"):
        name = check_ifname(bkey.value, path, _line(bkey), f"bridges.{bkey.value}")
        spec = BridgeSpec(name=name, path=str(path), line=_line(bkey),
                          mac_field=f"bridges.{name}.gateway-mac",
                          ip_field=f"bridges.{name}.gateway-ip")
        for pkey, pvalue in _mapping(bvalue, path, f"bridges.{name}"):
            fname = f"bridges.{name}.{pkey.value}"
            if pkey.value == "isolate-ports":
                spec.isolate_ports = _flag(pvalue, path, fname)
                continue
            items = _scalars(pvalue, path, fname)
            if pkey.value == "gateway-mac":
                spec.macs += _parsed(items, addresses.parse_mac, path, fname)
            elif pkey.value == "gateway-ip":
                spec.ips += _parsed(items, addresses.parse_ip, path, fname)
                spec.ips_given = True
            elif pkey.value == "subnets":
                spec.subnets += _parsed(items, _parse_network, path, fname)
            else:
                _unknown(pkey, BRIDGE_KEYS, path, fname)
        specs.append(spec)
    return specs


def _scalar(node, path, field_name, expected):
    if not isinstance(node, yaml.ScalarNode) or node.value == "":
        raise ConfigError(path, _line(node), field_name, f"expected {expected}")
    return node.value


def _flag(node, path, field_name):
    value = _scalar(node, path, field_name, "true or false").lower()
    if value not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
        raise ConfigError(path, _line(node), field_name, f"{node.value!r} is not true or false")
    return value in ("true", "yes", "on", "1")


def _choice(node, path, field_name, choices):
    value = _scalar(node, path, field_name, "one of " + ", ".join(choices))
    norm = value.upper() if choices == _POLICIES else value
    if norm not in choices:
        raise ConfigError(path, _line(node), field_name,
                          f"{value!r} is not one of: {', '.join(choices)}")
    return norm


def _chain(node, path, field_name):
    value = _scalar(node, path, field_name, "a hookscript (volume id like local:snippets/x.sh, or a path)")
    if not (value.startswith("/") or re.match(r"^[A-Za-z][A-Za-z0-9_.-]*:snippets/[^/]+$", value)):
        raise ConfigError(path, _line(node), field_name,
                          f"{value!r} is neither an absolute path nor a snippets volume id "
                          "(<storage>:snippets/<file>)")
    return value


def _hookscript(node, path):
    kw = {}
    for key, value in _mapping(node, path, "hookscript"):
        fname = f"hookscript.{key.value}"
        if key.value == "on-failure":
            kw["on_failure"] = _choice(value, path, fname, ("fail-closed", "fail-open"))
        elif key.value == "strict":
            kw["strict"] = _flag(value, path, fname)
        elif key.value == "chain":
            kw["chain"] = _chain(value, path, fname)
        elif key.value == "policy-in":
            kw["policy_in"] = _choice(value, path, fname, _POLICIES)
        else:
            _unknown(key, HOOKSCRIPT_KEYS, path, fname)
    return HookscriptSettings(**kw)


def _guests(node, path):
    out = {}
    for gkey, gvalue in _mapping(node, path, "guests"):
        if not gkey.value.isdigit() or not 100 <= int(gkey.value) <= 999999999:
            raise ConfigError(path, _line(gkey), f"guests.{gkey.value}",
                              "expected a VMID (100-999999999)")
        vmid = int(gkey.value)
        addrs, kw = {}, {}
        for key, value in _mapping(gvalue, path, f"guests.{vmid}"):
            fname = f"guests.{vmid}.{key.value}"
            m = _NET_KEY.match(key.value)
            if m:
                items = _scalars(value, path, fname)
                addrs[int(m.group(1))] = tuple(str(a) for a, _ in _parsed(items, addresses.parse_ip, path, fname))
            elif key.value == "chain":
                kw["chain"] = _chain(value, path, fname)
            elif key.value == "policy-in":
                kw["policy_in"] = _choice(value, path, fname, _POLICIES)
            else:
                _unknown(key, GUEST_KEYS, path, fname)
        out[vmid] = GuestSettings(vmid=vmid, source=f"{path}:{_line(gkey)}", addresses=addrs, **kw)
    return out


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
    doc = parse_document(text, paths.config) if text is not None else Document()
    text = _read(paths.legacy_config)
    legacy_specs = parse_legacy(text, paths.legacy_config) if text is not None else []
    specs, warnings = combine(doc.bridges, legacy_specs)
    bridges = tuple(resolve(s, sdn) for s in specs)
    return Config(bridges=bridges, warnings=tuple(warnings), hookscript=doc.hookscript,
                  guests=dict(doc.guests))
