"""/etc/pve/microseg.yaml: its schema, parsed and validated with line numbers (pure).

    bridges:
      web:                                  # an SDN VNet or a Linux bridge
        gateway-mac: 00:00:5e:00:01:64      # one, or a list (VRRP/anycast)
        gateway-ip: [10.100.0.1, 2001:db8:100::1]   # VNets: default = subnet gateways
    hookscript: {on-failure: fail-closed, strict: true, chain: ..., policy-in: ...}
    guests:
      101: {net0: [10.100.0.50], chain: ..., policy-in: ..., port-security: mac}
    port-security: mac+ip                   # the default of every bridge (also per bridge)
    intra-vnet-routing: drop                # or allow; the default of every bridge (also per bridge)
    log: off                                # on: each drop logged to the kernel log, once a minute per port and class

PyYAML costs ~15 ms to import, a quarter of the guest hookscript's budget:
only this module and policy/yamledit.py import it, and the hookscript reads
the parsed form from a cache keyed by the file's text (edges/state.py).
"""

import dataclasses
import ipaddress
import re

import yaml

from ..model.bridge import INTRA_VNET_ROUTING, PORT_SECURITY
from ..model.config import BridgeSpec, Document, GuestSettings, HookscriptSettings
from ..model.errors import ConfigError
from . import addresses, names
from .names import check_ifname
from .yamlnodes import compose, line_of as _line

TOP_LEVEL_KEYS = ("bridges", "hookscript", "guests", "port-security", "intra-vnet-routing", "log")
BRIDGE_KEYS = ("gateway-mac", "gateway-ip", "subnets", "isolate-ports", "port-security", "intra-vnet-routing",
               "vnet-firewall-before")
VNET_FIREWALL_BEFORE_KEYS = ("enable", "policy_forward", "added-bridge", "enabled-datacenter-firewall")
HOOKSCRIPT_KEYS = ("on-failure", "strict", "chain", "policy-in")
GUEST_KEYS = ("net<N>", "chain", "policy-in", "port-security")

_POLICIES = ("ACCEPT", "DROP", "REJECT")
_SNIPPET = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*:snippets/[^/\x00-\x1f]+", re.ASCII)


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


def parse_document(text, path="microseg.yaml"):
    """Parse microseg.yaml -> Document.  Raises ConfigError."""
    root = compose(text, path)
    doc = Document()
    if root is None:
        return doc
    for key, value in _mapping(root, path, ""):
        if key.value == "bridges":
            doc.bridges.extend(_bridges(value, path))
        elif key.value == "hookscript":
            doc = dataclasses.replace(doc, hookscript=_hookscript(value, path))
        elif key.value == "port-security":
            doc = dataclasses.replace(doc, port_security=_choice(value, path, key.value, PORT_SECURITY))
        elif key.value == "intra-vnet-routing":
            doc = dataclasses.replace(doc, intra_vnet_routing=_choice(value, path, key.value, INTRA_VNET_ROUTING))
        elif key.value == "guests":
            doc.guests.update(_guests(value, path))
        elif key.value == "log":
            doc = dataclasses.replace(doc, log=_switch(value, path, key.value))
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
            if pkey.value == "port-security":
                spec.port_security = _choice(pvalue, path, fname, PORT_SECURITY)
                continue
            if pkey.value == "intra-vnet-routing":
                spec.intra_vnet_routing = _choice(pvalue, path, fname, INTRA_VNET_ROUTING)
                continue
            if pkey.value == "vnet-firewall-before":
                before = {}
                for k, v in _mapping(pvalue, path, fname):
                    if k.value not in VNET_FIREWALL_BEFORE_KEYS or not isinstance(v, yaml.ScalarNode):
                        _unknown(k, VNET_FIREWALL_BEFORE_KEYS, path, f"{fname}.{k.value}")
                    before[k.value] = v.value
                spec.vnet_firewall_before = before
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


_ON, _OFF = ("on", "true", "yes"), ("off", "false", "no")


def _switch(node, path, field_name):
    """`on` or `off`.  YAML 1.1 (PyYAML) reads on/off, yes/no and true/false
    alike as booleans, so each of them is taken, in any case, quoted or not;
    anything else (1, enabled, an empty value, a list) is refused."""
    value = _scalar(node, path, field_name, "on or off")
    if value.lower() not in _ON + _OFF:
        raise ConfigError(path, _line(node), field_name, f"{value!r} is not on or off")
    return value.lower() in _ON


def _choice(node, path, field_name, choices):
    value = _scalar(node, path, field_name, "one of " + ", ".join(choices))
    norm = value.upper() if choices == _POLICIES else value
    if norm not in choices:
        raise ConfigError(path, _line(node), field_name,
                          f"{value!r} is not one of: {', '.join(choices)}")
    return norm


def _chain(node, path, field_name):
    value = _scalar(node, path, field_name, "a hookscript (volume id like local:snippets/x.sh, or a path)")
    if not (value.startswith("/") or _SNIPPET.fullmatch(value)):
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


def _guest_vmid(key, keys, path):
    """A `guests:` key -> its VMID; ConfigError for anything but a VMID as
    Proxmox writes it, naming the key it would duplicate (101 and 0101)."""
    try:
        return names.vmid(key.value)
    except ValueError as e:
        same = [k for k in keys if k is not key and k.value.isascii() and k.value.isdigit()
                and int(k.value) == int(key.value)] if key.value.isascii() and key.value.isdigit() else []
        also = f"; guests.{same[0].value} on line {_line(same[0])} is the same guest" if same else ""
        raise ConfigError(path, _line(key), f"guests.{_shown(key.value)}", f"{e}{also}") from None


def _shown(key):
    """A key as a field name: as written, or quoted when it holds a newline or the like."""
    return key if key.isprintable() else repr(key)


def _guests(node, path):
    out = {}
    entries = _mapping(node, path, "guests")
    keys = [k for k, _ in entries]
    for gkey, gvalue in entries:
        vmid = _guest_vmid(gkey, keys, path)
        addrs, kw = {}, {}
        for key, value in _mapping(gvalue, path, f"guests.{vmid}"):
            fname = f"guests.{vmid}.{_shown(key.value)}"
            index = names.nic_index(key.value)
            if index is not None:
                items = _scalars(value, path, fname)
                addrs[index] = tuple(str(a) for a, _ in _parsed(items, addresses.parse_ip, path, fname))
            elif key.value == "chain":
                kw["chain"] = _chain(value, path, fname)
            elif key.value == "policy-in":
                kw["policy_in"] = _choice(value, path, fname, _POLICIES)
            elif key.value == "port-security":
                kw["port_security"] = _choice(value, path, fname, PORT_SECURITY)
            else:
                _unknown(key, GUEST_KEYS, path, fname)
        out[vmid] = GuestSettings(vmid=vmid, source=f"{path}:{_line(gkey)}", addresses=addrs, **kw)
    return out
