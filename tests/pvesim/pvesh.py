"""A fake `pvesh` for the simulator, checked against Proxmox's own API schema.

    pvesh [--noproxy] <ls|get|set|create|delete|usage> <api_path> [--param value ...]
          [--output-format text|json|json-pretty|yaml] [--quiet] [--noproxy]

Every call is matched against the endpoint templates of the real API schema
(tests/fixtures/pve-api-subset.json, extracted from pve-docs api-viewer/apidata.js)
and its parameters are checked the way PVE::JSONSchema checks them; the
implemented endpoints then read and write the simulator's fake /etc/pve tree
(tests/pvesim).  The short names in brackets cite the Proxmox sources the
behaviour was taken from:
  [pvesh]     proxmox/pve-manager PVE/CLI/pvesh.pm@14a22df35955d97dfc1af21e117dc894a29df0c9;
              proxmox/pve-common src/PVE/CLIHandler.pm, src/PVE/CLIFormatter.pm,
              src/PVE/RESTEnvironment.pm (fork_worker) @f665029eac78022e81810ab2e44eace57ade13fb
  [fw-api]    proxmox/pve-firewall src/PVE/Firewall.pm@6f1311f349daee920c7eedcc6e53d7fc5e2cfdbf
              (parse_*/save_* of the .fw files, the option parsers)
  [pmxcfs]    proxmox/pve-cluster src/PVE/Cluster.pm, src/pmxcfs/@7091d92e594952dba65c1e57568b3d7cc244e960
  [sectioncfg] proxmox/pve-common src/PVE/SectionConfig.pm@f665029eac78022e81810ab2e44eace57ade13fb
  [sdn]       proxmox/pve-network src/PVE/API2/Network/SDN.pm, src/PVE/Network/SDN.pm
              @ecf98c5d8f12fac9d61f3da27376aaab0ab598dc
  [network]   proxmox/pve-manager PVE/API2/Network.pm@14a22df35955d97dfc1af21e117dc894a29df0c9
              (reload_network_config: the `srvreload` task)
  [tasks]     proxmox/pve-manager PVE/API2/Tasks.pm@14a22df35955d97dfc1af21e117dc894a29df0c9;
              proxmox/pve-common src/PVE/UPID.pm, src/PVE/RESTEnvironment.pm (active_workers),
              src/PVE/INotify.pm (the active list), src/PVE/ProcFSTools.pm
              @f665029eac78022e81810ab2e44eace57ade13fb
  [schema]    tests/fixtures/pve-api-subset.json (pve-docs api-viewer/apidata.js, see SOURCES.txt)

Simulated:
* the command line [pvesh]: verbs, Getopt::Long-style options (`--k v`, `--k=v`,
  `-k`, unique prefixes, case-insensitive names, booleans without a value,
  repeated flags for array and `*-list` parameters), `--output-format`
  (json: one line, sorted keys; json-pretty; yaml; text: a plain rendering),
  `--quiet`, null results print nothing, empty arrays print nothing in text;
* errors: `no '<verb>' handler for '<path>'`; `400 Parameter verification
  failed.` + one `<param>: <message>` line per error (sorted) + a usage line;
  `Unknown option: x` + `400 unable to parse option`; other errors as plain
  text; exit status 255 for every error;
* validation (PVE::JSONSchema order: type, format, pattern implicitly anchored,
  maxLength, minLength, maximum, minimum, enum): required parameters, the named
  formats listed in FORMATS (others are accepted), `-list`/`-opt` formats,
  inline property-string formats (qemu/lxc `net[n]`, `log_ratelimit`, ...),
  indexed parameters `net[n]` -> `net0`..`net31`; a method with
  `additionalParameters` takes any other `--name value` unchecked (no method
  of the subset has it);
* proxying: a `proxyto` method whose node is not the local one runs locally
  (as that node) and is recorded in run/sim/pvesh-proxied.log; with
  `--noproxy` it fails `proxy loop detected - aborting`; an unknown node
  fails the host name lookup; a node /etc/pve/.members lists with `online: 0`
  fails as pvesh's ssh to it does (`proxy handler failed: ssh: connect to
  host <ip> port 22: No route to host`), and /cluster/resources shows it
  `offline`;
* firewall files [fw-api, pmxcfs]: read leniently like pve-firewall (lowercased ipset
  names and option keys, unparsable lines dropped), written back whole in the
  API's canonical form under the cfs lock (firewall-cluster, firewall-vm-<vmid>,
  firewall-vnet-<vnet>) with tmp + rename (pve_microseg.pmxcfs); an empty result
  deletes the file; per-object `digest` = sha1 as pve-firewall computes it;
* endpoints: /cluster/firewall/options, .../ipset[/{name}[/{cidr}]] for the
  cluster and for guests (qemu and lxc), firewall options (cluster, guest,
  VNet), rules and rules/{pos} (cluster, guest, VNet), guest config GET/PUT (main section, `digest`, `delete`,
  `revert`, the guest config flock), /cluster/resources;
* worker tasks [pvesh, tasks]: run synchronously (log and UPID on stdout, exit
  0 even on TASK ERROR), UPIDs with the worker's real pid and start, a task
  log per task in the node's own task directory (the tree's var/log/pve/tasks
  for the local node, run/sim/nodes/<node>/var/log/pve/tasks for the
  others: a task is only found on its node), the active list and the
  `index` archive kept as active_workers keeps them; GET /nodes/{node}/tasks
  (filters, `source`), .../{upid}/status (running while the worker's process
  runs), .../{upid}/log;
* the SDN apply [sdn, network]: PUT /cluster/sdn commits .running-config and
  runs `reloadnetworkall`, which calls `pvesh set /nodes/<node>/network` for
  each node (this simulator again, proxied to remote nodes); that starts the
  node's own `srvreload` task.  A node's failed reload fails its srvreload
  task only; an unreachable node is only warned about in reloadnetworkall's
  log; reloadnetworkall itself ends OK unless it has no quorum.  Switches
  (files under run/sim): `reloadnetworkall.no-quorum`; `ifreload.<node>`
  (ifreload -a fails there, printing the file's lines); `ifreload.<node>.running`
  (that node's srvreload runs on in the background for the file's seconds,
  and the ssh session of the call that started it drops).

Not simulated: permissions (every call runs as root@pam), the real text table
layout, rule checks beyond the basic ones in verify_rule(), macros, references
to aliases/ipsets in rules, pending changes of running guests (config PUT
writes the main section directly, as a successful hotplug would), the network
reload itself (interfaces.d/sdn, interfaces.new, ifreload, FRR: only its
outcome, through the switches), warnings pve-firewall prints
while parsing broken files.  Other schema endpoints answer "not implemented".

Environment: PVE_MICROSEG_PVE_DIR (the fake /etc/pve), PVE_SIM_LOCK_DIR (guest
config flocks), PVE_SIM_NODE (default: the `local` link),
PVE_SIM_CFS_LOCK_TIMEOUT (seconds, default 10, as the API uses).
"""

import fcntl
import functools
import hashlib
import ipaddress
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMA_FILE = HERE.parent / "fixtures" / "pve-api-subset.json"
sys.path.insert(0, str(HERE.parent.parent / "lib"))
sys.path.insert(0, str(HERE))

from pve_microseg.edges import pmxcfs  # noqa: E402  (tmp+rename and the cfs lock protocol only)
from pve_microseg.model.errors import ClusterFsError  # noqa: E402
import guestcmd  # noqa: E402  (the guest config flock)

VERBS = {"get": "GET", "set": "PUT", "create": "POST", "delete": "DELETE"}
LOG_LEVELS = "emerg|alert|crit|err|warning|notice|info|debug|nolog"
MODIFIED = "detected modified configuration - file changed by other user? Try again."
STD_OPTIONS = {
    "output-format": {"name": "output-format", "type": "string", "required": False,
                      "enum": ["text", "json", "json-pretty", "yaml"]},
    "quiet": {"name": "quiet", "type": "boolean", "required": False},
    "noproxy": {"name": "noproxy", "type": "boolean", "required": False},
    "human-readable": {"name": "human-readable", "type": "boolean", "required": False},
    "noborder": {"name": "noborder", "type": "boolean", "required": False},
    "noheader": {"name": "noheader", "type": "boolean", "required": False},
}
# how many of each indexed parameter `name[n]` exist (qemu-server / pve-container)
INDEXED_COUNT = {"net": 32, "ipconfig": 32, "unused": 256, "mp": 256, "dev": 256, "ide": 4,
                 "sata": 6, "scsi": 31, "virtio": 16, "usb": 14, "serial": 4, "parallel": 3,
                 "hostpci": 16, "numa": 8, "virtiofs": 10}


# =============================================================== errors

class ApiError(Exception):
    """An error pvesh prints on stderr: `[<code> ]<message>` and, for parameter
    errors (code 400), one line per parameter and the usage line."""

    def __init__(self, message, code=None, errors=None, before=()):
        super().__init__(message)
        self.message = message
        self.code = code
        self.errors = errors or {}
        self.before = list(before)          # lines Getopt prints first

    def render(self, usage=None):
        lines = list(self.before)
        lines.append(f"{self.code} {self.message}" if self.code else self.message)
        for key in sorted(self.errors):
            lines.append(f"{key}: {self.errors[key]}")
        if self.code == 400 and usage:
            lines.append(usage)
        return "\n".join(lines) + "\n"


def param_error(errors):
    return ApiError("Parameter verification failed.", code=400, errors=errors)


def option_error(*before):
    return ApiError("unable to parse option", code=400, before=before)


# =============================================================== schema

class Api:
    """The endpoints of the schema, matched like PVE::API2->find_handler."""

    def __init__(self, data):
        self.endpoints = data["endpoints"]
        self._compiled = sorted(((self._regex(t), t) for t in self.endpoints),
                                key=lambda rt: (rt[1].count("{"), -len(rt[1])))

    @staticmethod
    def _regex(template):
        parts = []
        segments = template.strip("/").split("/")
        for i, seg in enumerate(segments):
            m = re.fullmatch(r"\{([\w-]+)\}", seg)
            if not m:
                parts.append(re.escape(seg))
            elif m.group(1) == "cidr" and i == len(segments) - 1:
                parts.append("(?P<cidr>.+)")        # fragmentDelimiter '': a CIDR has a '/'
            else:
                parts.append(f"(?P<{m.group(1).replace('-', '_')}>[^/]+)")
        return re.compile("^/" + "/".join(parts) + "$")

    @staticmethod
    def normalise(path):
        return "/" + "/".join(p for p in path.split("/") if p)

    def match(self, path):
        """(template, {placeholder: value}) or (None, {})."""
        path = self.normalise(path)
        for regex, template in self._compiled:
            m = regex.match(path)
            if m:
                names = re.findall(r"\{([\w-]+)\}", template)
                return template, {n: m.group(n.replace("-", "_")) for n in names}
        return None, {}

    def children(self, template):
        """Direct children of a template in the schema tree."""
        prefix = template.rstrip("/") + "/"
        out = set()
        for t in self.endpoints:
            if t.startswith(prefix):
                out.add(t[len(prefix):].split("/")[0])
        return sorted(out)


@functools.lru_cache(maxsize=None)
def load_api():
    return Api(json.loads(SCHEMA_FILE.read_text()))


def indexed_names(param):
    """`net[n]` -> net0..net31; other names unchanged."""
    name = param["name"]
    if not name.endswith("[n]"):
        return [name]
    base = name[:-3]
    return [f"{base}{i}" for i in range(INDEXED_COUNT.get(base, 32))]


def param_table(info, exclude=()):
    """{cli name: parameter schema} of a method, indexed names expanded."""
    table = {}
    for p in info.get("parameters", []):
        for name in indexed_names(p):
            if name not in exclude:
                table[name] = p
    return table


def type_text(p):
    """What the usage line shows for a parameter (schema_get_type_text)."""
    if p.get("typetext"):
        return p["typetext"]
    if p.get("enum"):
        return "<" + " | ".join(sorted(map(str, p["enum"]))) + ">"
    if p.get("pattern"):
        return p["pattern"]
    if p.get("type") in ("integer", "number") and ("minimum" in p or "maximum" in p):
        return f"<{p['type']}> ({p.get('minimum', 'N')} - {p.get('maximum', 'N')})"
    return f"<{p.get('type', 'string')}>"


def usage_line(verb, props):
    """`pvesh <verb> <api_path> --required <type> [OPTIONS] [FORMAT_OPTIONS]`
    (the short usage of PVE::RESTHandler; the exact text is unverified [pvesh])."""
    required = [f"--{n} {type_text(p)}" for n, p in sorted(props.items())
                if p.get("required") and n not in STD_OPTIONS]
    return " ".join([f"pvesh {verb} <api_path>"] + required + ["[OPTIONS]", "[FORMAT_OPTIONS]"])


# =============================================================== command line

def resolve_option(name, props, extra=False):
    """Getopt::Long: exact name, else case-insensitive, else a unique prefix;
    with `extra` (a method with additionalParameters) any other name is a string."""
    if name in props:
        return name
    lower = {n.lower(): n for n in props}
    if name.lower() in lower:
        return lower[name.lower()]
    hits = sorted(n for n in props if n.lower().startswith(name.lower()))
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise option_error(f"Option {name} is ambiguous ({', '.join(hits)})")
    if extra:
        props[name] = {"name": name, "type": "string", "required": False}
        return name
    raise option_error(f"Unknown option: {name}")


def takes_list(p):
    fmt = p.get("format")
    return p.get("type") == "array" or (isinstance(fmt, str) and "-list" in fmt)


def parse_options(args, props, extra=False):
    """Split `--k v` pairs into {name: raw value or [values]} and positionals."""
    values, positional = {}, []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            positional += args[i:]
            break
        if not arg.startswith("-") or arg == "-" or re.fullmatch(r"-\d+", arg):
            positional.append(arg)
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        name = resolve_option(name, props, extra)
        p = props[name]
        if not eq:
            if p.get("type") == "boolean":
                value = args[i] if i < len(args) and not args[i].startswith("-") else ""
                i += value != ""
            elif i < len(args):
                value, i = args[i], i + 1
            else:
                raise option_error(f"Option {name} requires an argument")
        if takes_list(p):
            values.setdefault(name, []).append(value)
        else:
            values[name] = value
    return values, positional


def parse_boolean(value):
    if re.fullmatch(r"1|on|yes|true", value, re.I):
        return 1
    if re.fullmatch(r"0|off|no|false", value, re.I):
        return 0
    return None


def cook_options(values, props):
    """What get_options does after Getopt: booleans, `-list` joins."""
    out = {}
    for name, value in values.items():
        p = props[name]
        if p.get("type") == "boolean":
            parsed = 1 if value == "" else parse_boolean(value)
            if parsed is None:
                raise ApiError("unable to parse boolean option", code=400)
            out[name] = parsed
        elif isinstance(value, list) and p.get("type") != "array":
            out[name] = ",".join(value)
        else:
            out[name] = value
    return out


# =============================================================== validation

IPV4 = r"(?:(?:25[0-5]|(?:2[0-4]|1[0-9]|[1-9])?[0-9])\.){3}(?:25[0-5]|(?:2[0-4]|1[0-9]|[1-9])?[0-9])"
IP_ALIAS = r"[A-Za-z][A-Za-z0-9\-\_]+"


class FormatError(Exception):
    pass


def split_list(text):
    return [x for x in re.split(r"[,;\s\0]+", text or "") if x]


def ip_of(text, version=None):
    """An ipaddress address for a plain IPv4/IPv6 address, else None."""
    if version in (None, 4) and re.fullmatch(IPV4, text):
        return ipaddress.IPv4Address(text)
    if version in (None, 6) and ":" in text and "%" not in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    return None


def cidr_parts(text, version=None):
    """(address, prefix length or None) of `addr[/len]`, or None."""
    addr, slash, plen = text.partition("/")
    ip = ip_of(addr, version)
    if ip is None or (slash and not re.fullmatch(r"\d+", plen)):
        return None
    if slash and int(plen) > ip.max_prefixlen:
        return None
    return ip, (int(plen) if slash else None)


def _fmt_regex(regex, message):
    def check(value):
        if not re.fullmatch(regex, value):
            raise FormatError(message.format(value=value))
    return check


def _fmt_ip(version, what):
    def check(value):
        if ip_of(value, version) is None:
            raise FormatError(f"value does not look like a valid {what}")
    return check


def _fmt_cidr(version, what):
    def check(value):
        parts = cidr_parts(value, version)
        if parts is None or parts[1] is None or parts[1] <= 7:
            raise FormatError(f"value does not look like a valid {what}")
    return check


def _fmt_ip_or_cidr(value):
    if cidr_parts(value) is None:
        raise FormatError("value does not look like a valid IP address or CIDR network")


def _fmt_ip_or_cidr_or_alias(value):
    if re.fullmatch(rf"(?:(?:dc|guest)/)?{IP_ALIAS}", value):
        return
    _fmt_ip_or_cidr(value)


def _fmt_ip_config(version, keywords):
    def check(value):
        if value in keywords:
            return
        parts = cidr_parts(value, version)
        if parts is None or parts[1] is None or parts[1] <= 7:
            raise FormatError(f"value does not look like a valid ipv{version} network configuration")
    return check


def _fmt_vnet_id(value):
    if not re.fullmatch(r"[a-z][a-z0-9]*[a-z0-9]", value, re.I):
        raise FormatError(f"vnet ID '{value}' contains illegal characters")
    if len(value) > 8:
        raise FormatError(f"vnet ID '{value}' can't be more than 8 characters")


def _fmt_zone_id(value):
    if not re.fullmatch(r"[a-z][a-z0-9]*[a-z0-9]", value, re.I):
        raise FormatError(f"zone ID '{value}' contains illegal characters")
    if len(value) > 8:
        raise FormatError(f"zone ID '{value}' can't be more than 8 characters")


DNS_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?"
FORMATS = {
    "pve-vmid": _fmt_regex(r"[1-9][0-9]{2,8}", "value does not look like a valid VM ID"),
    "pve-node": _fmt_regex(DNS_LABEL, "value does not look like a valid node name"),
    "pve-configid": _fmt_regex(r"(?i)[a-z][a-z0-9_-]+", "invalid configuration ID '{value}'"),
    "pve-iface": _fmt_regex(r"(?i)[a-z][a-z0-9_]{1,20}(?:[:.]\d+)?",
                            "invalid network interface name '{value}'"),
    "pve-bridge-id": _fmt_regex(r"[-_.\w\d]+", "invalid bridge ID '{value}'"),
    "pve-storage-id": _fmt_regex(r"(?i)[a-z][a-z0-9\-_.]*[a-z0-9]",
                                 "storage ID '{value}' contains illegal characters"),
    "pve-volume-id": _fmt_regex(r"(?i)[a-z][a-z0-9\-_.]*[a-z0-9]:.+",
                                "unable to parse volume ID '{value}'"),
    "mac-addr": _fmt_regex(r"(?i)[a-f0-9][02468ace](?::[a-f0-9]{2}){5}",
                           "value does not look like a valid unicast MAC address"),
    "dns-name": _fmt_regex(rf"(?:{DNS_LABEL}\.)*{DNS_LABEL}", "value does not look like a valid DNS name"),
    "urlencoded": _fmt_regex(r"[-%a-zA-Z0-9_.!~*'()]*", "invalid urlencoded string: {value}"),
    "ipv4mask": _fmt_regex(r"(?:255\.){0,3}(?:0|128|192|224|240|248|252|254|255)(?:\.0){0,3}",
                           "value does not look like a valid IP netmask"),
    "ip": _fmt_ip(None, "IP address"),
    "ipv4": _fmt_ip(4, "IPv4 address"),
    "ipv6": _fmt_ip(6, "IPv6 address"),
    "CIDR": _fmt_cidr(None, "CIDR network"),
    "CIDRv4": _fmt_cidr(4, "IPv4 CIDR network"),
    "CIDRv6": _fmt_cidr(6, "IPv6 CIDR network"),
    "IPorCIDR": _fmt_ip_or_cidr,
    "IPorCIDRorAlias": _fmt_ip_or_cidr_or_alias,
    "pve-ipv4-config": _fmt_ip_config(4, ("dhcp", "manual")),
    "pve-ipv6-config": _fmt_ip_config(6, ("auto", "dhcp", "manual")),
    "pve-sdn-vnet-id": _fmt_vnet_id,
    "pve-sdn-zone-id": _fmt_zone_id,
}
# named property-string formats the subset keeps only as a name
NAMED_PROPERTY_FORMATS = {
    "pve-qm-ipconfig": {
        "ip": {"type": "string", "format": "pve-ipv4-config", "optional": 1},
        "gw": {"type": "string", "format": "ipv4", "optional": 1},
        "ip6": {"type": "string", "format": "pve-ipv6-config", "optional": 1},
        "gw6": {"type": "string", "format": "ipv6", "optional": 1},
    },
}


def check_format(fmt, value, path):
    """Raise FormatError(message) if `value` does not have the format."""
    if isinstance(fmt, dict):
        parse_property_string(fmt, value, path)
        return
    if fmt in NAMED_PROPERTY_FORMATS:
        parse_property_string(NAMED_PROPERTY_FORMATS[fmt], value, path)
        return
    m = re.fullmatch(r"(.*?)(?:-(list|opt))?", fmt)
    name, kind = m.group(1), m.group(2)
    check = FORMATS.get(name)
    if check is None:                        # a format we do not know: accepted
        return
    if kind == "list":
        for item in split_list(value):
            check(item)
    elif kind != "opt" or value:
        check(value)


def parse_property_string(fmt, value, path):
    """PVE::JSONSchema::parse_property_string: `[default=]v,k=v,...` -> dict."""
    res, default_key = {}, None
    for part in value.split(","):
        if not part.strip():
            continue
        m = re.fullmatch(r"([^=]+)=(.+)", part, re.S)
        if m:
            key, val = m.group(1), m.group(2)
            if key in res:
                raise FormatError(f"duplicate key in comma-separated list property: {key}")
            schema = fmt.get(key) or {}
            if schema.get("alias"):
                if schema.get("keyAlias"):
                    if schema["keyAlias"] in res:
                        raise FormatError(f"key alias '{schema['keyAlias']}' is already defined")
                    res[schema["keyAlias"]] = key
                key = schema["alias"]
                schema = fmt.get(key)
            if not schema:
                raise FormatError(f"invalid key in comma-separated list property: {key}")
            if schema.get("type") == "boolean":
                parsed = parse_boolean(val)
                val = val if parsed is None else str(parsed)
            res[key] = val
        elif "=" not in part:
            if default_key:
                raise FormatError(f"duplicate key in comma-separated list property: {default_key}")
            default_key = next((k for k, s in fmt.items() if s.get("default_key")), None)
            if default_key is None:
                raise FormatError("value without key, but schema does not define a default key")
            if res.get(default_key):
                raise FormatError(f"duplicate key in comma-separated list property: {default_key}")
            res[default_key] = part
        else:
            raise FormatError("missing key in comma-separated list property")
    errors = {}
    for key, schema in fmt.items():
        check_value(f"{path}.{key}", schema, res.get(key), errors)
    if errors:
        raise FormatError("format error\n" + "\n".join(f"{k}: {v}" for k, v in sorted(errors.items())))
    return res


def perl_pattern(pattern):
    """A schema pattern as Python re, anchored as Perl's m/^$pattern$/."""
    return "^" + pattern.replace("(?^:", "(?:") + "$"


def is_integer(value):
    return re.fullmatch(r"[+-]?\d+", value) is not None


def is_number(value):
    return re.fullmatch(r"[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?", value) is not None


def check_type(path, ptype, value, errors):
    ok = {"boolean": lambda v: v in ("0", "1"), "integer": is_integer,
          "number": is_number}.get(ptype, lambda v: True)
    if not ok(value):
        errors[path] = f"type check ('{ptype}') failed - got '{value}'"
        return False
    return True


def check_value(path, schema, value, errors):
    """PVE::JSONSchema::check_prop for a scalar (or array) parameter value."""
    if value is None:
        if not schema.get("optional", not schema.get("required", True)) \
                and not schema.get("alias"):
            errors[path] = "property is missing and it is not optional"
        return
    if isinstance(value, list):
        if schema.get("type") != "array":
            errors[path] = f"type check ('{schema.get('type')}') failed"
        for i, item in enumerate(value):
            check_value(f"{path}[{i}]", dict(schema.get("items") or {}, optional=1), item, errors)
        return
    value = str(value)
    if schema.get("type") == "array":
        errors[path] = "type check ('array') failed"
        return
    if not check_type(path, schema.get("type"), value, errors):
        return
    for check in (_check_format, _check_pattern, _check_lengths, _check_range, _check_enum):
        message = check(path, schema, value)
        if message:
            errors[path] = message
            return


def _check_format(path, schema, value):
    if schema.get("format"):
        try:
            check_format(schema["format"], value, path)
        except FormatError as e:
            return f"invalid format - {e}"
    return None


def _check_pattern(path, schema, value):
    pattern = schema.get("pattern")
    if pattern:
        try:
            regex = re.compile(perl_pattern(pattern))
        except re.error:
            return None                     # a Perl-only construct: not checked
        if not regex.search(value):
            return "value does not match the regex pattern"
    return None


def _check_lengths(path, schema, value):
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return f"value may only be {schema['maxLength']} characters long"
    if "minLength" in schema and len(value) < schema["minLength"]:
        return f"value must be at least {schema['minLength']} characters long"
    return None


def _check_range(path, schema, value):
    if not is_number(value):
        return None
    if "maximum" in schema and float(value) > float(schema["maximum"]):
        return f"value must have a maximum value of {schema['maximum']}"
    if "minimum" in schema and float(value) < float(schema["minimum"]):
        return f"value must have a minimum value of {schema['minimum']}"
    return None


def _check_enum(path, schema, value):
    enum = schema.get("enum")
    if enum and value not in [str(e) for e in enum]:
        return f"value '{value}' does not have a value in the enumeration '{', '.join(map(str, enum))}'"
    return None


def validate(params, props, skip_required=()):
    """Errors {name: message} for the given values against {name: schema}."""
    errors = {}
    for name, p in props.items():
        if name in params or (p.get("required") and name not in skip_required):
            check_value(name, p, params.get(name), errors)
    return errors


def typed(params, props):
    """Validated values with their schema types (integers, 0/1 booleans)."""
    out = {}
    for name, value in params.items():
        ptype = (props.get(name) or {}).get("type")
        if ptype in ("integer", "boolean") and isinstance(value, str) and is_integer(value):
            value = int(value)
        elif ptype == "number" and isinstance(value, str) and is_number(value):
            value = float(value) if not is_integer(value) else int(value)
        out[name] = value
    return out


# =============================================================== output

def coerce(data, schema):
    """Return values typed as the return schema says (the API's JSON does)."""
    schema = schema or {}
    if isinstance(data, list):
        return [coerce(x, schema.get("items")) for x in data]
    if isinstance(data, dict):
        props = schema.get("properties") or {}
        return {k: coerce(v, props.get(k) or props.get(re.sub(r"\d+$", "[n]", k))) for k, v in data.items()}
    if isinstance(data, str) and schema.get("type") in ("integer", "boolean") and is_integer(data):
        return int(data)
    if isinstance(data, str) and schema.get("type") == "number" and is_number(data):
        return int(data) if is_integer(data) else float(data)
    return data


def render(data, returns, fmt):
    """What pvesh prints for a result."""
    if (returns or {}).get("type") == "null":
        return ""
    data = coerce(data, returns)
    if fmt == "json":
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    if fmt == "json-pretty":
        return json.dumps(data, sort_keys=True, indent=3, separators=(",", " : "), ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return render_yaml(data)
    return render_text(data)


def render_yaml(data):
    try:
        import yaml
    except ImportError:                     # python3-yaml missing: JSON is valid YAML
        return "---\n" + json.dumps(data, sort_keys=True, indent=2) + "\n"
    return yaml.safe_dump(data, explicit_start=True, sort_keys=True, default_flow_style=False,
                          allow_unicode=True)


def _cell(value):
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


def render_text(data):
    """A plain rendering (the real pvesh draws tables; use json to parse)."""
    if data is None or data == [] or data == "":
        return ""
    if isinstance(data, dict):
        width = max(map(len, data))
        return "".join(f"{k:<{width}}  {_cell(data[k])}\n" for k in sorted(data))
    if isinstance(data, list) and all(isinstance(x, dict) for x in data):
        keys = sorted({k for row in data for k in row})
        rows = [keys] + [[_cell(row.get(k, "")) for k in keys] for row in data]
        widths = [max(len(r[i]) for r in rows) for i in range(len(keys))]
        return "".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n" for r in rows)
    if isinstance(data, list):
        return "".join(f"{_cell(x)}\n" for x in data)
    return f"{data}\n"


# =============================================================== firewall files

OPTION_SYNTAX = {   # what pve-firewall's option parsers accept, per kind of file [fw-api]
    "guest": [(r"(enable|dhcp|ndp|radv|macfilter|ipfilter|ips):\s*(0|1)", int),
              (rf"(log_level_in|log_level_out):\s*((?:{LOG_LEVELS})?)", str),
              (r"(policy_(?:in|out)):\s*(ACCEPT|DROP|REJECT)", str.upper),
              (r"(ips_queues):\s*(\d+(?::\d+)?)", str),
              (r"(layer2_protocols):\s*(\S+)", str)],
    "vnet": [(r"(enable):\s*(\d+)", int),
             (r"(policy_forward):\s*(ACCEPT|DROP)", str.upper),
             (rf"(log_level_forward):\s*((?:{LOG_LEVELS})?)", str)],
    "cluster": [(r"(enable):\s*(\d+)", int),
                (r"(ebtables):\s*(0|1)", int),
                (r"(policy_(?:in|out)):\s*(ACCEPT|DROP|REJECT)", str.upper),
                (r"(policy_forward):\s*(ACCEPT|DROP)", str.upper),
                (r"(log_ratelimit):\s*(\S+)", str)],
}
SECTIONS = {"guest": {"options", "aliases", "ipset", "rules"},
            "vnet": {"options", "rules"},
            "cluster": {"options", "aliases", "ipset", "rules", "group"}}
RULE_TYPES = {"guest": ("in", "out", "group"), "vnet": ("forward", "group"),
              "cluster": ("in", "out", "forward", "group")}
RULE_OPTIONS = [("iface", r"-i"), ("source", r"--?source"), ("dest", r"--?dest"),
                ("proto", r"--?(?:p|proto)"), ("dport", r"--?dport"), ("sport", r"--?sport"),
                ("log", r"--?log"), ("icmp-type", r"--?icmp-type")]
RULE_KEYS = ("type", "action", "macro", "iface", "source", "dest", "proto", "dport", "sport",
             "log", "icmp-type", "enable", "comment")
PORT_PROTOCOLS = {"tcp", "udp", "udplite", "dccp", "sctp", "6", "17", "33", "132", "136"}


@dataclass
class FwConf:
    kind: str
    options: dict = field(default_factory=dict)
    aliases: dict = field(default_factory=dict)          # lowercase name -> {name, cidr, comment}
    ipsets: dict = field(default_factory=dict)           # name -> [{cidr, nomatch, comment}]
    ipset_comments: dict = field(default_factory=dict)
    rules: list = field(default_factory=list)
    groups: dict = field(default_factory=dict)
    group_comments: dict = field(default_factory=dict)

    def ipset(self, name):
        if name not in self.ipsets:
            raise ApiError(f"no such IPSet '{name}'")
        return self.ipsets[name]


def _split_comment(line):
    m = re.search(r"\s*#\s*(.*?)\s*$", line)
    return (line[:m.start()], m.group(1)) if m else (line, None)


def _section_header(line, kind):
    """(section, name, comment) for a header line allowed in this file, or None."""
    m = re.fullmatch(r"\[(options|aliases|rules)\]", line, re.I)
    if m:
        return m.group(1).lower(), None, None
    m = re.fullmatch(r"\[(ipset|group)\s+(\S+)\]\s*(?:#\s*(.*?)\s*)?", line, re.I)
    if m:
        return m.group(1).lower(), m.group(2).lower(), m.group(3)
    return None


def parse_fw(text, kind):
    """Read a .fw file the lenient way (pve-firewall's generic parser)."""
    conf = FwConf(kind)
    section, name = None, None
    for raw in text.split("\n"):
        line = raw.strip(" \t")
        if not line or line.startswith("#"):
            continue
        header = _section_header(line, kind) if line.startswith("[") else None
        if header and header[0] in SECTIONS[kind]:
            section, name, comment = header
            if section in ("ipset", "group") and not valid_set_name(section, name):
                section = None                # invalid name: its lines are skipped
            else:
                _open_section(conf, section, name, comment)
            continue
        if section:
            _parse_line(conf, section, name, line)
    return conf


def valid_set_name(section, name):
    return bool(re.fullmatch(IP_ALIAS, name)) and len(name) <= (64 if section == "ipset" else 18)


def _open_section(conf, section, name, comment):
    if section == "ipset":
        conf.ipsets[name] = []                # a second declaration replaces the first
        conf.ipset_comments.pop(name, None)
        if comment:
            conf.ipset_comments[name] = comment
    elif section == "group":
        conf.groups[name] = []
        conf.group_comments.pop(name, None)
        if comment:
            conf.group_comments[name] = comment


def _parse_line(conf, section, name, line):
    if section == "options":
        parsed = parse_option(line, conf.kind)
        if parsed:
            conf.options[parsed[0]] = parsed[1]
    elif section == "aliases":
        body, comment = _split_comment(line)
        m = re.fullmatch(r"(\S+)\s(\S+)", body)
        if m and cidr_parts(m.group(2)):
            entry = {"name": m.group(1), "cidr": strip_host_prefix(m.group(2)), "comment": comment}
            conf.aliases[m.group(1).lower()] = entry
    elif section == "ipset":
        entry = parse_ipset_entry(line, conf.ipsets[name])
        if entry:
            conf.ipsets[name].append(entry)
    else:
        rule = parse_rule(line, conf.kind if section == "rules" else "cluster")
        if rule:
            (conf.rules if section == "rules" else conf.groups[name]).append(rule)


def parse_option(line, kind):
    for regex, convert in OPTION_SYNTAX[kind]:
        m = re.fullmatch(regex + r"\s*", line, re.I)
        if m:
            return m.group(1).lower(), convert(m.group(2))
    return None


def strip_host_prefix(cidr):
    """parse_ip_or_cidr: `/32` and `/128` are dropped."""
    return re.sub(r"/32$", "", cidr) if "." in cidr and ":" not in cidr else re.sub(r"/128$", "", cidr)


def parse_ipset_entry(line, current):
    body, comment = _split_comment(line)
    m = re.fullmatch(r"(!)?\s*(\S+)\s*", body)
    if not m:
        return None
    cidr, errors = m.group(2), {}
    if not re.fullmatch(rf"(?:(?:dc|guest)/)?{IP_ALIAS}", cidr):
        if cidr_parts(cidr) is None:
            errors["cidr"] = "value does not look like a valid IP address or CIDR network"
        else:
            cidr = strip_host_prefix(cidr)
    if any(e["cidr"] == cidr for e in current):
        errors["cidr"] = f"duplicate ipset entry for '{cidr}'"
    if re.search(r"/0+$", cidr):
        errors["cidr"] = "a zero prefix is not allowed in ipset entries"
    entry = {"cidr": cidr, "nomatch": 1 if m.group(1) else None, "comment": comment or None}
    if errors:
        entry["errors"] = errors
    return entry


def parse_rule(line, kind):
    """A rule line as a dict, or None if pve-firewall would drop it."""
    enable = 1
    if line.startswith("|"):
        enable, line = 0, line[1:].lstrip()
    body, comment = _split_comment(line)
    m = re.fullmatch(r"(IN|OUT|FORWARD|GROUP)\s+(\S+)\s*(.*)", body, re.I)
    if not m or m.group(1).lower() not in RULE_TYPES[kind]:
        return None
    rule = {"type": m.group(1).lower(), "enable": enable, "comment": comment or None}
    macro = re.fullmatch(r"(\S+)\((ACCEPT|DROP|REJECT)\)", m.group(2))
    rule.update({"macro": macro.group(1), "action": macro.group(2)} if macro else {"action": m.group(2)})
    rest = m.group(3)
    while rest:
        for key, flag in RULE_OPTIONS:
            opt = re.match(rf"{flag}\s+(\S+)\s*", rest)
            if opt:
                rule[key], rest = opt.group(1), rest[opt.end():]
                break
        else:
            return None
    return rule


def format_rules(rules, allow_iface):
    out = ""
    for r in rules:
        line = ("|" if r.get("enable") is not None and not int(r["enable"]) else "") + r["type"].upper()
        line += f" {r['macro']}({r['action']})" if r.get("macro") else f" {r['action']}"
        if allow_iface and r.get("iface"):
            line += f" -i {r['iface']}"
        if r["type"] != "group":
            for key, flag in (("source", "-source"), ("dest", "-dest"), ("proto", "-p"),
                              ("dport", "-dport"), ("sport", "-sport"), ("log", "-log"),
                              ("icmp-type", "-icmp-type")):
                if r.get(key) not in (None, ""):
                    line += f" {flag} {r[key]}"
        if r.get("comment") and r["comment"].strip():
            line += f" # {r['comment']}"
        out += line + "\n"
    return out


def format_ipsets(conf):
    out = ""
    for name in sorted(conf.ipsets):
        comment = conf.ipset_comments.get(name)
        out += f"[IPSET {name}] # {comment}\n\n" if comment else f"[IPSET {name}]\n\n"
        entries = {}
        for e in conf.ipsets[name]:
            entries.setdefault(e["cidr"], e)          # the first of duplicates wins
        for cidr in sorted(entries):
            e = entries[cidr]
            line = ("!" if e.get("nomatch") else "") + cidr
            if e.get("comment") and e["comment"].strip():
                line += f" # {e['comment']}"
            out += line + "\n"
        out += "\n"
    return out


def render_fw(conf):
    """The whole file in the API's canonical form [fw-api] ('' = delete the file).
    Option and alias order is random in Perl; here it is sorted."""
    out = ""
    if conf.options:
        out += "[OPTIONS]\n\n" + "".join(f"{k}: {conf.options[k]}\n" for k in sorted(conf.options)) + "\n"
    if conf.aliases and "aliases" in SECTIONS[conf.kind]:
        out += "[ALIASES]\n\n"
        for key in sorted(conf.aliases):
            a = conf.aliases[key]
            out += f"{a['name']} {a['cidr']}" + (f" # {a['comment']}" if a.get("comment") else "") + "\n"
        out += "\n"
    if "ipset" in SECTIONS[conf.kind]:
        out += format_ipsets(conf)
    if conf.rules:
        out += "[RULES]\n\n" + format_rules(conf.rules, True) + "\n"
    for name in sorted(conf.groups) if "group" in SECTIONS[conf.kind] else ():
        comment = conf.group_comments.get(name)
        out += (f"[group {name}] # {comment}\n\n" if comment else f"[group {name}]\n\n")
        out += format_rules(conf.groups[name], False) + "\n"
    return out


def _digest_value(value):
    return str(value).encode("utf-8")


def copy_object_with_digest(obj):
    """pve-firewall's copy_opject_with_digest: (copy + digest, digest)."""
    sha = hashlib.sha1()
    res = {}
    for k in sorted(obj):
        if obj[k] is None:
            continue
        res[k] = obj[k]
        sha.update(k.encode() + b":" + _digest_value(obj[k]) + b"\n")
    res["digest"] = sha.hexdigest()
    return res, res["digest"]


def copy_list_with_digest(items):
    """pve-firewall's copy_list_with_digest: every copy carries the list digest."""
    sha = hashlib.sha1()
    res = []
    for item in items:
        data = {k: v for k, v in sorted(item.items()) if v is not None}
        for k, v in data.items():
            if not isinstance(v, (dict, list)):
                sha.update(k.encode() + b":" + _digest_value(v) + b"\n")
        res.append(data)
    digest = sha.hexdigest()
    for data in res:
        data["digest"] = digest
    return res, digest


def assert_digest(current, given):
    if given and given != current:
        raise ApiError(MODIFIED)


# =============================================================== the simulated node

class Sim:
    """The fake node: paths into the tree and the local node name."""

    def __init__(self, environ):
        if not environ.get("PVE_MICROSEG_PVE_DIR"):
            raise ApiError("pvesh simulator: PVE_MICROSEG_PVE_DIR (the fake /etc/pve) is not set")
        self.pve = Path(environ["PVE_MICROSEG_PVE_DIR"])
        self.root = self.pve.parent.parent
        self.lock_dir = Path(environ.get("PVE_SIM_LOCK_DIR") or self.root / "run/lock")
        self.local = os.path.basename(os.readlink(self.pve / "local"))
        self.node = environ.get("PVE_SIM_NODE") or self.local
        self.lock_timeout = float(environ.get("PVE_SIM_CFS_LOCK_TIMEOUT") or pmxcfs.LOCK_TIMEOUT)
        self.run_sim = self.root / "run/sim"
        self.environ = environ

    @property
    def lock_root(self):
        return self.pve / "priv" / "lock"

    @property
    def task_dir(self):
        """/var/log/pve/tasks of the node this call runs on (node-local: the
        tree's own for the local node, run/sim/nodes/<node>/... for the others)."""
        if self.node == self.local:
            return self.root / "var/log/pve/tasks"
        return self.run_sim / "nodes" / self.node / "var/log/pve/tasks"

    def nodes(self):
        base = self.pve / "nodes"
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def members(self):
        """The `nodelist` of /etc/pve/.members ({} when there is none)."""
        try:
            return json.loads((self.pve / ".members").read_text()).get("nodelist") or {}
        except (OSError, ValueError, AttributeError):
            return {}

    def nodelist(self):
        """The cluster's nodes as PVE::Cluster::get_nodelist has them [pmxcfs]:
        .members' nodelist, else the nodes/ directories (here sorted; upstream
        in hash order)."""
        return sorted(self.members()) or self.nodes()

    def online(self, node):
        """False when .members lists the node as not online."""
        info = self.members().get(node)
        return info is None or bool(info.get("online"))

    def node_ip(self, node):
        return (self.members().get(node) or {}).get("ip") or node

    def cfs_lock(self, lockid):
        """The cluster-wide lock the API takes, with Proxmox's error texts."""
        return _CfsLock(self, lockid)

    def read(self, path):
        try:
            return pmxcfs.read_file(path)
        except ClusterFsError as e:
            raise ApiError(str(e)) from None

    def write(self, path, text):
        try:
            pmxcfs.write_file(path, text)
        except ClusterFsError as e:
            raise ApiError(str(e)) from None

    def record_proxy(self, node, verb, path):
        self.run_sim.mkdir(parents=True, exist_ok=True)
        with open(self.run_sim / "pvesh-proxied.log", "a") as f:
            f.write(f"{node}\t{verb}\t{path}\n")


class _CfsLock:
    def __init__(self, sim, lockid):
        self.sim, self.lockid, self._cm = sim, lockid, None

    def __enter__(self):
        paths = type("LockPaths", (), {"lock_dir": self.sim.lock_root})()
        self._cm = pmxcfs.cfs_lock(paths, self.lockid, timeout=self.sim.lock_timeout)
        try:
            return self._cm.__enter__()
        except ClusterFsError as e:
            text = str(e)
            for known in ("got lock request timeout", "no quorum!", "pve cluster filesystem not online"):
                if known in text:
                    raise ApiError(f"cfs-lock '{self.lockid}' error: {known}") from None
            raise ApiError(text) from None

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


@dataclass
class Call:
    sim: Sim
    template: str
    method: str
    info: dict
    params: dict          # validated and typed, path placeholders included
    proxied: bool = False  # the call came through proxyto from another node


# =============================================================== endpoints

HANDLERS = {}
GUEST = ("/nodes/{node}/qemu/{vmid}", "/nodes/{node}/lxc/{vmid}")
VNET = "/cluster/sdn/vnets/{vnet}"


def handler(method, *templates):
    def register(fn):
        for t in templates:
            HANDLERS[(method, t)] = fn
        return fn
    return register


def fw_paths(suffix, cluster=True, guest=True, vnet=False):
    out = ["/cluster/firewall" + suffix] if cluster else []
    out += [g + "/firewall" + suffix for g in GUEST] if guest else []
    out += [VNET + "/firewall" + suffix] if vnet else []
    return out


@dataclass
class FwScope:
    kind: str
    path: Path
    lockid: str


def fw_scope(call):
    p = call.params
    if call.template.startswith("/cluster/firewall"):
        return FwScope("cluster", call.sim.pve / "firewall/cluster.fw", "firewall-cluster")
    if call.template.startswith(VNET):
        return FwScope("vnet", call.sim.pve / "sdn/firewall" / f"{p['vnet']}.fw", f"firewall-vnet-{p['vnet']}")
    return FwScope("guest", call.sim.pve / "firewall" / f"{p['vmid']}.fw", f"firewall-vm-{p['vmid']}")


def load_fw(call, scope):
    return parse_fw(call.sim.read(scope.path), scope.kind)


def save_fw(call, scope, conf):
    call.sim.write(scope.path, render_fw(conf))


def locked_fw(call, change):
    """Read-modify-write a firewall file under its cfs lock."""
    scope = fw_scope(call)
    with call.sim.cfs_lock(scope.lockid):
        conf = load_fw(call, scope)
        change(conf)
        save_fw(call, scope, conf)


def cluster_fw(call):
    return parse_fw(call.sim.read(call.sim.pve / "firewall/cluster.fw"), "cluster")


# ---------------------------------------------------------------- options

def option_keys(call):
    fixed = {"node", "vmid", "vnet", "delete", "digest"}
    return [p["name"] for p in call.info["parameters"] if p["name"] not in fixed]


@handler("GET", *fw_paths("/options", vnet=True))
def get_options(call):
    return copy_object_with_digest(load_fw(call, fw_scope(call)).options)[0]


@handler("PUT", *fw_paths("/options", vnet=True))
def set_options(call):
    p, keys = call.params, option_keys(call)

    def change(conf):
        assert_digest(copy_object_with_digest(conf.options)[1], p.get("digest"))
        for opt in split_list(p.get("delete")):
            if opt not in keys:
                raise param_error({"delete": f"no such option '{opt}'"})
            conf.options.pop(opt, None)
        for k in keys:
            if k in p:
                conf.options[k] = p[k]
    locked_fw(call, change)


# ---------------------------------------------------------------- ipset lists

def ipset_list(conf):
    items = [{"name": n, "comment": conf.ipset_comments.get(n)} for n in sorted(conf.ipsets)]
    return copy_list_with_digest(items)


@handler("GET", *fw_paths("/ipset"))
def get_ipsets(call):
    return ipset_list(load_fw(call, fw_scope(call)))[0]


@handler("POST", *fw_paths("/ipset"))
def create_ipset(call):
    p = call.params
    name, rename = p["name"], p.get("rename")

    def change(conf):
        if rename:
            assert_digest(ipset_list(conf)[1], p.get("digest"))
            if rename not in conf.ipsets:
                raise param_error({"name": f"IPSet '{rename}' does not exists"})
            if name in conf.ipsets and name != rename:
                raise param_error({"name": f"IPSet '{name}' does already exist"})
            conf.ipsets[name] = conf.ipsets.pop(rename)
            if rename in conf.ipset_comments:
                conf.ipset_comments[name] = conf.ipset_comments.pop(rename)
        else:
            if name in conf.ipsets:
                raise param_error({"name": f"IPSet '{name}' already exists"})
            conf.ipsets[name] = []
        if p.get("comment") is not None:
            conf.ipset_comments[name] = p["comment"]
    locked_fw(call, change)


# ---------------------------------------------------------------- one ipset

@handler("GET", *fw_paths("/ipset/{name}"))
def get_ipset(call):
    return copy_list_with_digest(load_fw(call, fw_scope(call)).ipset(call.params["name"]))[0]


@handler("DELETE", *fw_paths("/ipset/{name}"))
def delete_ipset(call):
    name = call.params["name"]

    def change(conf):
        if conf.ipset(name) and not call.params.get("force"):
            raise ApiError(f"IPSet '{name}' is not empty")
        del conf.ipsets[name]
        conf.ipset_comments.pop(name, None)
    locked_fw(call, change)


def normalise_cidr(cidr):
    """The API's canonical form of an address [fw-api, schema]: host bits zeroed,
    `/32` and `/128` dropped, IPv6 compressed in lower case."""
    ip, plen = cidr_parts(cidr)
    if plen is None or plen == ip.max_prefixlen:
        return str(ip)
    return str(ipaddress.ip_network(f"{ip}/{plen}", strict=False))


def check_alias(call, conf, cidr):
    """An alias entry must name an existing alias (guest file, then cluster)."""
    scope, _, name = cidr.rpartition("/")
    sources = {"dc": [cluster_fw(call)], "guest": [conf]}.get(scope, [conf, cluster_fw(call)])
    if not any(name.lower() in c.aliases for c in sources):
        raise ApiError(f"no such alias '{cidr}'")


@handler("POST", *fw_paths("/ipset/{name}"))
def add_ip(call):
    p = call.params

    def change(conf):
        entries = conf.ipset(p["name"])
        cidr = p["cidr"]
        if re.fullmatch(rf"(?:(?:dc|guest)/)?{IP_ALIAS}", cidr):
            check_alias(call, conf, cidr)
        else:
            cidr = normalise_cidr(cidr)
        if any(e["cidr"] == cidr for e in entries):
            raise param_error({"cidr": f"address '{cidr}' already exists"})
        if re.search(r"/0+$", cidr):
            raise param_error({"cidr": "a zero prefix is not allowed in ipset entries"})
        entries.insert(0, {"cidr": cidr, "nomatch": 1 if p.get("nomatch") else None,
                           "comment": p.get("comment") or None})
    locked_fw(call, change)


# ---------------------------------------------------------------- one entry

def find_entry(entries, cidr):
    for e in entries:
        if e["cidr"] == cidr:
            return e
    raise param_error({"cidr": "no such IP/Network"})


@handler("GET", *fw_paths("/ipset/{name}/{cidr}"))
def read_ip(call):
    entries = copy_list_with_digest(load_fw(call, fw_scope(call)).ipset(call.params["name"]))[0]
    return find_entry(entries, call.params["cidr"])


@handler("PUT", *fw_paths("/ipset/{name}/{cidr}"))
def update_ip(call):
    p = call.params

    def change(conf):
        entries = conf.ipset(p["name"])
        assert_digest(copy_list_with_digest(entries)[1], p.get("digest"))
        entry = find_entry(entries, p["cidr"])
        entry["nomatch"] = p.get("nomatch") or None            # unset parameters clear the field
        entry["comment"] = p.get("comment") or None
    locked_fw(call, change)


@handler("DELETE", *fw_paths("/ipset/{name}/{cidr}"))
def remove_ip(call):
    p = call.params

    def change(conf):
        entries = conf.ipset(p["name"])
        assert_digest(copy_list_with_digest(entries)[1], p.get("digest"))
        entries.remove(find_entry(entries, p["cidr"]))
    locked_fw(call, change)


# ---------------------------------------------------------------- rules

def rules_with_pos(rules):
    listed, digest = copy_list_with_digest(rules)
    for pos, rule in enumerate(listed):
        rule["pos"] = pos
    return listed, digest


@handler("GET", *fw_paths("/rules", vnet=True))
def get_rules(call):
    return rules_with_pos(load_fw(call, fw_scope(call)).rules)[0]


def verify_rule(call, rule, kind):
    """The basic checks of pve-firewall's verify_rule (messages partly unverified)."""
    errors = {}
    if rule["type"] not in RULE_TYPES[kind]:
        errors["type"] = f"rule type '{rule['type']}' is not allowed here"
    elif rule["type"] == "group":
        if rule["action"].lower() not in cluster_fw(call).groups:
            errors["action"] = f"security group '{rule['action']}' does not exist"
    elif rule["action"] not in ("ACCEPT", "DROP", "REJECT"):
        errors["action"] = f"unknown action '{rule['action']}'"
    elif rule["type"] == "forward" and rule["action"] == "REJECT":
        errors["action"] = "REJECT is not allowed for forward rules"
    for port in ("dport", "sport"):
        if rule.get(port):
            if not rule.get("proto"):
                errors["proto"] = f"missing property - '{port}' requires this property"
            elif rule["proto"] not in PORT_PROTOCOLS:
                errors[port] = f"protocol '{rule['proto']}' does not support ports"
    if errors:
        raise param_error(errors)


@handler("POST", *fw_paths("/rules", vnet=True))
def create_rule(call):
    p = call.params
    scope = fw_scope(call)

    def change(conf):
        assert_digest(rules_with_pos(conf.rules)[1], p.get("digest"))
        rule = {k: p[k] for k in RULE_KEYS if p.get(k) not in (None, "")}
        verify_rule(call, rule, scope.kind)
        rule.setdefault("enable", 0)                   # a new rule is disabled unless enable=1
        pos = min(p.get("pos", 0), len(conf.rules))
        conf.rules.insert(pos, rule)
    locked_fw(call, change)


def rule_at(rules, pos):
    if pos >= len(rules):
        raise ApiError(f"no rule at position {pos}")
    return rules[pos]


@handler("GET", *fw_paths("/rules/{pos}", vnet=True))
def get_rule(call):
    return rule_at(get_rules(call), call.params["pos"])


@handler("PUT", *fw_paths("/rules/{pos}", vnet=True))
def update_rule(call):
    p, kind = call.params, fw_scope(call).kind

    def change(conf):
        assert_digest(rules_with_pos(conf.rules)[1], p.get("digest"))
        rule = rule_at(conf.rules, p["pos"])
        if p.get("moveto") is not None and p["moveto"] != p["pos"]:
            conf.rules.remove(rule)                     # moveto: other parameters are ignored
            conf.rules.insert(min(p["moveto"], len(conf.rules)), rule)
            return
        for k in RULE_KEYS:
            if k in p:
                rule[k] = p[k] if p[k] != "" else None
        for k in split_list(p.get("delete")):
            if k in ("type", "action"):
                raise param_error({"delete": f"unable to delete required property '{k}'"})
            rule.pop(k, None)
        verify_rule(call, rule, kind)
    locked_fw(call, change)


@handler("DELETE", *fw_paths("/rules/{pos}", vnet=True))
def delete_rule(call):
    p = call.params

    def change(conf):
        assert_digest(rules_with_pos(conf.rules)[1], p.get("digest"))
        conf.rules.remove(rule_at(conf.rules, p["pos"]))
    locked_fw(call, change)


# ---------------------------------------------------------------- guest config

GUEST_DIRS = {"qemu": "qemu-server", "lxc": "lxc"}
CONFIG_FIXED = {"node", "vmid", "digest", "delete", "revert", "force", "skiplock", "background_delay"}


@dataclass
class GuestConfig:
    description: str = None
    main: dict = field(default_factory=dict)
    pending: dict = field(default_factory=dict)
    rest: str = ""                     # [PENDING], [special:cloudinit], snapshots: kept as text
    sections: dict = field(default_factory=dict)


def parse_guest_config(text):
    conf, descr = GuestConfig(), []
    lines = text.split("\n")
    section = conf.main
    for i, line in enumerate(lines):
        m = re.fullmatch(r"\[([^\]]+)\]\s*", line)
        if m:
            if section is conf.main:
                conf.rest = "\n".join(lines[i:])
            section = conf.sections.setdefault(m.group(1), {})
            if m.group(1) == "PENDING":
                conf.pending = section
            continue
        if section is conf.main and line.startswith("#"):
            descr.append(line[1:])
            continue
        kv = re.fullmatch(r"(\S+?):\s*(.*\S)\s*", line)
        if kv:
            section[kv.group(1)] = kv.group(2)
    conf.description = "\n".join(descr) + "\n" if descr else None
    return conf


def render_guest_config(conf):
    """qemu-server's writer: description as `#` lines, keys sorted, then the
    other sections as they were."""
    out = ""
    if conf.description is not None:
        out += "".join(f"#{line}\n" for line in conf.description.rstrip("\n").split("\n"))
    out += "".join(f"{k}: {conf.main[k]}\n" for k in sorted(conf.main))
    rest = conf.rest.lstrip("\n")
    return out + ("\n" + rest if rest else "")


def guest_config_path(call):
    """The config on the node that runs the call (after proxying; `localhost`
    is the local node), as PVE::AbstractConfig's cfs_config_path does."""
    gtype = "qemu" if "/qemu/" in call.template else "lxc"
    rel = f"nodes/{call.sim.node}/{GUEST_DIRS[gtype]}/{call.params['vmid']}.conf"
    return gtype, rel, call.sim.pve / rel


def read_guest_config(call):
    gtype, rel, path = guest_config_path(call)
    if not path.exists():
        raise ApiError(f"Configuration file '{rel}' does not exist")
    text = call.sim.read(path)
    return gtype, path, text, parse_guest_config(text)


@handler("GET", *(g + "/config" for g in GUEST))
def get_config(call):
    _, _, text, conf = read_guest_config(call)
    p = call.params
    if p.get("snapshot"):
        if p["snapshot"] not in conf.sections:
            raise ApiError(f"snapshot '{p['snapshot']}' does not exist")
        data = dict(conf.sections[p["snapshot"]])
    else:
        data = dict(conf.main)
        if conf.description is not None:
            data["description"] = conf.description
        if not p.get("current"):                   # pending changes applied by default
            for k, v in conf.pending.items():
                if k != "delete":
                    data[k] = v
            for k in split_list(conf.pending.get("delete")):
                data.pop(k.lstrip("!"), None)
    data["digest"] = hashlib.sha1(text.encode("utf-8")).hexdigest()
    return data


def guest_flock(call, gtype):
    name = f"lock-{call.params['vmid']}.conf" if gtype == "qemu" else f"pve-config-{call.params['vmid']}.lock"
    call.sim.lock_dir.mkdir(parents=True, exist_ok=True)
    return guestcmd.flock(call.sim.lock_dir / name)


@handler("PUT", *(g + "/config" for g in GUEST))
def set_config(call):
    p = call.params
    gtype = guest_config_path(call)[0]
    fd = guest_flock(call, gtype)
    try:
        _, path, text, conf = read_guest_config(call)
        apply_config_change(call, gtype, text, conf)
        call.sim.write(path, render_guest_config(conf))
    finally:
        os.close(fd)
    return None


def apply_config_change(call, gtype, text, conf):
    p = call.params
    if conf.main.get("lock") and not p.get("skiplock"):
        raise ApiError(f"{'VM' if gtype == 'qemu' else 'CT'} {p['vmid']} is locked ({conf.main['lock']})")
    assert_digest(hashlib.sha1(text.encode("utf-8")).hexdigest(), p.get("digest"))
    changes = {k: v for k, v in p.items() if k not in CONFIG_FIXED}
    for opt in split_list(p.get("delete")):
        if opt in changes:
            raise param_error({"delete": f"you can't use '-{opt}' and -delete {opt}' at the same time"})
        if opt == "description":
            conf.description = None
        conf.main.pop(opt, None)
    for opt in split_list(p.get("revert")):
        conf.pending.pop(opt, None)
    if changes.get("hookscript"):
        check_hookscript(call, changes["hookscript"])
    for k, v in changes.items():
        if k == "description":
            conf.description = v if v.endswith("\n") else v + "\n"
        else:
            conf.main[k] = str(v)


def check_hookscript(call, volume):
    """PVE::GuestHelpers::check_hookscript: the volume must be a snippet that
    exists and is executable on the node (message wording [I])."""
    storage, _, rest = volume.partition(":")
    kind, _, name = rest.partition("/")
    if kind != "snippets":
        raise ApiError(f"hookscript: '{volume}' is not in the snippets directory")
    base = None
    current = None
    for line in (call.sim.read(call.sim.pve / "storage.cfg") or "").splitlines():
        if line and not line[0].isspace() and ":" in line:
            current = line.split(":", 1)[1].strip()
        elif line.strip().startswith("path ") and current == storage:
            base = line.strip()[5:].strip()
    if base is None and storage == "local":
        base = "/var/lib/vz"
    path = os.path.join(base or "", "snippets", name)
    if base is None or not os.path.exists(path):
        raise ApiError(f"hookscript: script '{path}' does not exist")
    if not os.access(path, os.X_OK):
        raise ApiError(f"hookscript: script '{path}' is not executable")


# ---------------------------------------------------------------- cluster resources

def guest_name(call, node, gtype, vmid):
    path = call.sim.pve / "nodes" / node / GUEST_DIRS.get(gtype, gtype) / f"{vmid}.conf"
    try:
        main = parse_guest_config(path.read_text()).main
    except OSError:
        return None, {}
    return main.get("name") or main.get("hostname"), main


def vm_resources(call):
    out = []
    vmlist = json.loads(call.sim.read(call.sim.pve / ".vmlist") or "{}").get("ids") or {}
    for vmid, entry in vmlist.items():
        name, main = guest_name(call, entry["node"], entry["type"], vmid)
        running = (call.sim.run_sim / f"{vmid}.running").exists()
        res = {"id": f"{entry['type']}/{vmid}", "type": entry["type"], "node": entry["node"],
               "vmid": int(vmid), "status": "running" if running else "stopped",
               "template": int(main.get("template", 0) or 0)}
        if name:
            res["name"] = name
        if main.get("lock"):
            res["lock"] = main["lock"]
        out.append(res)
    return out


def node_resources(call):
    """`offline` for a node .members lists as not online (extract_node_stats in
    proxmox/pve-manager PVE/API2Tools.pm@14a22df35955d97dfc1af21e117dc894a29df0c9)."""
    return [{"id": f"node/{n}", "type": "node", "node": n,
             "status": "online" if call.sim.online(n) else "offline"} for n in call.sim.nodes()]


def storage_resources(call):
    out = []
    for section in parse_section_config(call.sim.read(call.sim.pve / "storage.cfg")):
        for n in call.sim.nodes():
            out.append({"id": f"storage/{n}/{section['id']}", "type": "storage", "node": n,
                        "storage": section["id"], "plugintype": section["type"],
                        "status": "available", "content": (section.get("content") or [""])[-1]})
    return out


def sdn_resources(call):
    running = json.loads(call.sim.read(call.sim.pve / "sdn/.running-config") or "{}")
    zones = (running.get("zones") or {}).get("ids") or {}
    return [{"id": f"sdn/{n}/{z}", "type": "sdn", "sdn": z, "node": n, "status": "ok"}
            for z in sorted(zones) for n in call.sim.nodes()]


@handler("GET", "/cluster/resources")
def cluster_resources(call):
    kinds = {"vm": vm_resources, "node": node_resources, "storage": storage_resources,
             "sdn": sdn_resources}
    wanted = [call.params["type"]] if call.params.get("type") else list(kinds)
    out = [r for k in wanted for r in kinds[k](call)]
    return sorted(out, key=lambda r: r["id"])


# ---------------------------------------------------------------- SDN apply and tasks

SDN_FILES = {"zones": "/cluster/sdn/zones", "vnets": "/cluster/sdn/vnets",
             "subnets": "/cluster/sdn/vnets/{vnet}/subnets", "controllers": "/cluster/sdn/controllers",
             "fabrics": None}


def parse_section_config(text):
    """SectionConfig [sectioncfg]: `type: id`, TAB-indented `key value`, a blank line
    ends a section.  -> [{"type", "id", key: [values in file order]}]"""
    out, current = [], None
    for line in text.split("\n"):
        if not line.strip():
            current = None
            continue
        if line.startswith("#"):
            continue
        header = re.fullmatch(r"(\S+):\s*(\S+)\s*", line)
        if header and not line[0].isspace():
            current = {"type": header.group(1), "id": header.group(2)}
            out.append(current)
        elif current is not None and line[0].isspace():
            m = re.fullmatch(r"\s+(\S+)(?:\s+(.*?))?\s*", line)
            if m:
                current.setdefault("_lines", []).append((m.group(1), m.group(2) or ""))
    for section in out:
        for key, value in section.pop("_lines", []):
            section.setdefault(key, []).append(value)
    return out


def running_section(api, name, text):
    """One `{"ids": {...}}` block of .running-config, typed by the POST schema."""
    info = api.endpoints.get(SDN_FILES[name] or "", {}).get("POST", {})
    types = {p["name"]: p["type"] for p in info.get("parameters", [])}
    ids = {}
    for section in parse_section_config(text):
        sid = section.pop("id")
        data = {"type": section.pop("type")}
        for key, values in section.items():
            if types.get(key) == "array":
                data[key] = values
            elif key == "nodes":
                data[key] = {n: 1 for n in split_list(values[-1])}
            elif types.get(key) in ("integer", "boolean") and is_integer(values[-1]):
                data[key] = int(values[-1])
            else:
                data[key] = values[-1]
        ids[sid] = data
    return {"ids": ids}


def proc_stat(pid):
    """(state, start in clock ticks since boot) of /proc/<pid>/stat, or (None, None)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None, None


def proc_starttime(pid):
    return proc_stat(pid)[1]


def new_upid(node, wtype, wid="", user="root@pam", pid=None):
    """PVE::UPID::encode [tasks]: the worker's pid and start, the task's start time."""
    pid = os.getpid() if pid is None else pid
    return (f"UPID:{node}:{pid:08X}:{proc_starttime(pid) or 0:08X}:{int(time.time()):08X}:"
            f"{wtype}:{wid}:{user}:")


UPID_RE = re.compile(r"UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):"
                     r"([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):")


def decode_upid(upid):
    m = UPID_RE.fullmatch(upid)
    if not m:
        return None
    return {"upid": upid, "node": m.group(1), "pid": int(m.group(3), 16), "pstart": int(m.group(4), 16),
            "starttime": int(m.group(5), 16), "type": m.group(6), "id": m.group(7), "user": m.group(8)}


def task_file(task_dir, upid):
    """The task's log: <task dir>/<last hex digit of its start time>/<UPID> [tasks]."""
    m = UPID_RE.fullmatch(upid)
    return task_dir / m.group(5)[-1] / upid if m else None


def task_running(upid, zombie_runs=True):
    """Whether the UPID's process still runs (same pid and start) [tasks]:
    read_task_status asks read_proc_starttime (a zombie counts), active_workers
    check_process_running (a zombie does not; ProcFSTools.pm [pvesh])."""
    task = decode_upid(upid)
    state, start = proc_stat(task["pid"]) if task else (None, None)
    return start is not None and start == task["pstart"] and (zombie_runs or state != "Z")


def exit_status(last):
    """PVE::UPID::read_status [tasks]: the status from the log's last line."""
    if last == "TASK OK":
        return "OK"
    for prefix, keep in (("TASK ERROR: ", ""), ("TASK WARNINGS: ", "WARNINGS: ")):
        if last.startswith(prefix):
            return keep + last[len(prefix):]
    return "unexpected status"


def read_status(path):
    lines = path.read_text().splitlines() if path and path.exists() else []
    return exit_status(lines[-1] if lines else "")


def normalize_status_type(status):
    """PVE::UPID::normalize_status_type [tasks]."""
    if not status or status == "unexpected status":
        return "unknown"
    if status == "OK":
        return "ok"
    return "warning" if re.fullmatch(r"WARNINGS: \d+", status) else "error"


ACTIVE_LINE = re.compile(r"(\S+)\s(0|1)(\s([0-9A-Za-z]{8})(\s(\s*\S.*))?)?")
INDEX_LINE = re.compile(r"(\S+)(\s([0-9A-Za-z]{8})(\s(\S.*))?)?")
MAX_FINISHED = 25


def read_active(task_dir):
    """/var/log/pve/tasks/active as PVE::INotify reads it [tasks]: `<upid> <saved 0|1>[ <endtime>[ <status>]]`."""
    path = task_dir / "active"
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        m = ACTIVE_LINE.fullmatch(line)
        task = decode_upid(m.group(1)) if m else None
        if task:
            task.update(saved=m.group(2) == "1", endtime=int(m.group(4), 16) if m.group(4) else None,
                        status=m.group(6))
            out.append(task)
    return out


def write_active(task_dir, tasks):
    lines = []
    for t in tasks:
        line = f"{t['upid']} {1 if t['saved'] else 0}"
        if t.get("endtime"):
            line += f" {t['endtime']:08X}" + (f" {t['status']}" if t.get("status") else "")
        lines.append(line + "\n")
    (task_dir / "active").write_text("".join(lines))


def active_workers(task_dir, new_upid):
    """RESTEnvironment::active_workers as a task starts [tasks]: the tasks of
    the active list that ended get their end time and status and are archived
    into `index` (`<upid> <endtime> <status>`); the list keeps the running
    ones (the new one counts as running), then a few that ended.  So a task
    that ended stays in the active list, without status, until the node's
    next task starts: GET .../tasks with `source=all` shows it as RUNNING,
    the default `source=archive` not at all."""
    task_dir.mkdir(parents=True, exist_ok=True)
    with open(task_dir / ".active.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        running, ended, seen = [], [], set()
        new = decode_upid(new_upid)
        new.update(saved=False, endtime=None, status=None)
        for task in read_active(task_dir) + [new]:
            if task["upid"] in seen:
                continue
            seen.add(task["upid"])
            (running if task is new or task_running(task["upid"], zombie_runs=False) else ended).append(task)
        ended.sort(key=lambda t: t["starttime"], reverse=True)
        archive = []
        for task in ended:
            if not task["endtime"]:
                task["endtime"] = int(time.time())
                task["status"] = read_status(task_file(task_dir, task["upid"]))
            if not task["saved"]:
                archive.append(f"{task['upid']} {task['endtime']:08X} {task['status']}\n")
                task["saved"] = True
        if archive:
            with open(task_dir / "index", "a") as index:
                index.write("".join(archive))
        write_active(task_dir, running + ended[:max(0, MAX_FINISHED - len(running))])


def _start_log(task_dir, upid):
    path = task_file(task_dir, upid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return path


def _end_log(work):
    log = []
    try:
        work(log)
        log.append("TASK OK")
    except ApiError as e:
        log.append(f"TASK ERROR: {e.message}")
    return log


def run_task(call, wtype, work, wid=""):
    """A worker task run synchronously, as in the CLI [pvesh]: it is entered
    in the node's active list, its log goes to stdout and into the task log,
    then the UPID is returned (exit 0 even when the task fails)."""
    upid = new_upid(call.sim.node, wtype, wid)
    active_workers(call.sim.task_dir, upid)
    path = _start_log(call.sim.task_dir, upid)
    log = _end_log(work)
    path.write_text("".join(f"{line}\n" for line in log))
    sys.stdout.write("".join(f"{line}\n" for line in log))
    sys.stdout.flush()
    return upid


def run_detached(call, wtype, wid, seconds, work):
    """A worker that goes on in its own session after the call that started
    it is gone (fork_worker's setsid [pvesh]): its UPID is the worker's; it
    runs `seconds`, then `work`, then writes its end.  An intermediate
    process reaps it at once, as init would.  Returns the UPID."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid_r, pid_w = os.pipe()
    path_r, path_w = os.pipe()
    if os.fork() == 0:                             # the intermediate
        try:
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            worker = os.fork()
            if worker == 0:                        # the worker
                try:
                    path = Path(os.read(path_r, 4096).decode())
                    time.sleep(seconds)
                    path.write_text("".join(f"{line}\n" for line in _end_log(work)))
                finally:
                    os._exit(0)
            os.write(pid_w, str(worker).encode())
            os.close(pid_w)
            os.waitpid(worker, 0)
        finally:
            os._exit(0)
    os.close(pid_w)
    pid = int(os.read(pid_r, 64).decode())
    upid = new_upid(call.sim.node, wtype, wid, pid=pid)
    active_workers(call.sim.task_dir, upid)
    path = _start_log(call.sim.task_dir, upid)
    os.write(path_w, str(path).encode())
    os.close(path_w)
    return upid


def check_sdn_lock(call):
    """The global SDN lock [sdn]: a matching --lock-token is needed."""
    lock = call.sim.pve / "sdn/.lock"
    token = call.params.get("lock-token")
    if lock.exists():
        if token is None or token != lock.read_text().strip():
            raise ApiError("invalid lock token provided!")
        if call.params.get("release-lock", 1):
            lock.unlink()


def has_frr(running):
    """running_config_has_frr [sdn] (without a node's local FRR config)."""
    return bool(((running.get("controllers") or {}).get("ids")) or ((running.get("fabrics") or {}).get("ids")))


@handler("PUT", "/cluster/sdn")
def sdn_apply(call):
    """reload [sdn]: commit .running-config under the SDN lock, then the task
    `reloadnetworkall`, which for each node of the node list logs `<node>:
    reloading network config` and runs `pvesh set /nodes/<node>/network
    --regenerate-frr 0|1` (here: this simulator, as this node), reading its
    stdout only for the UPID; the call's stderr goes into the log, and a
    failed call is only warned about (`command '...' failed: exit code N`).
    The task fails only when it cannot start (no quorum: switch
    run/sim/reloadnetworkall.no-quorum); a node's failed reload is that
    node's srvreload task's, never this task's."""
    sim, api = call.sim, load_api()
    with sim.cfs_lock("domain-sdn"):
        check_sdn_lock(call)
        old = json.loads(sim.read(sim.pve / "sdn/.running-config") or "{}")
        running = {name: running_section(api, name, sim.read(sim.pve / "sdn" / f"{name}.cfg"))
                   for name in SDN_FILES}
        running["version"] = int(old.get("version", 0)) + 1
        sim.write(sim.pve / "sdn/.running-config", json.dumps(running, sort_keys=True))
    frr = 1 if has_frr(old) or has_frr(running) else 0

    def work(log):
        if (sim.run_sim / "reloadnetworkall.no-quorum").exists():
            raise ApiError("cluster not ready - no quorum?")            # PVE::Cluster::check_cfs_quorum [pmxcfs]
        for node in sim.nodelist():
            log.append(f"{node}: reloading network config")
            argv = ["pvesh", "set", f"/nodes/{node}/network", "--regenerate-frr", str(frr)]
            r = subprocess.run([sys.executable, str(HERE / "bin" / "pvesh"), *argv[1:]],
                               env=dict(sim.environ, PVE_SIM_NODE=sim.node), capture_output=True, text=True)
            upid = None
            for line in r.stdout.splitlines():
                m = re.search(r"[\"']?(UPID:[^\s\"']+)[\"']?$", line)
                if m:
                    upid = m.group(1)
            log.extend(line.rstrip("\n") for line in r.stderr.splitlines())
            if r.returncode != 0:
                log.append(f"command '{' '.join(argv)}' failed: exit code {r.returncode}")
            elif not (upid and UPID_RE.fullmatch(upid)):
                log.append(f"unable to parse worker upid '{upid or ''}'")
    return run_task(call, "reloadnetworkall", work)


@handler("PUT", "/nodes/{node}/network")
def reload_network(call):
    """reload_network_config [network]: the node's task `srvreload` (id
    `networking`): generate the SDN interfaces (not simulated), `ifreload -a`
    (of its stderr only `warning|error: <iface>:` lines are logged, as
    `<iface> : <line> `; a failure ends the task `TASK ERROR: command
    'ifreload -a' failed: exit code 1`), FRR if asked (not simulated).
    Switches, per node: run/sim/ifreload.<node> (ifreload -a fails, printing
    the file's lines on stderr); run/sim/ifreload.<node>.running (the task
    runs on for the file's number of seconds, and the ssh session of the
    proxied call drops meanwhile: `Connection to <ip> closed by remote host.`
    is OpenSSH's text [I])."""
    sim = call.sim
    failure = sim.run_sim / f"ifreload.{sim.node}"
    hang = sim.run_sim / f"ifreload.{sim.node}.running"

    def work(log):
        if failure.exists():
            for line in failure.read_text().splitlines():
                m = re.search(r"(warning|error): (\S+):", line)
                if m:
                    log.append(f"{m.group(2)} : {line} ")
            raise ApiError("command 'ifreload -a' failed: exit code 1")

    if hang.exists():
        if not call.proxied:
            raise ApiError(f"pvesh simulator: {hang.name} needs a node other than the local one")
        run_detached(call, "srvreload", "networking", float(hang.read_text().strip() or 5), work)
        raise ApiError(f"proxy handler failed: Connection to {sim.node_ip(sim.node)} closed by remote host.")
    return run_task(call, "srvreload", work, wid="networking")


def read_task(call):
    upid = call.params["upid"]
    path = task_file(call.sim.task_dir, upid)
    if path is None:
        raise param_error({"upid": "unable to parse worker upid"})
    if not path.exists():
        raise param_error({"upid": "no such task"})
    return decode_upid(upid), path.read_text().splitlines()


@handler("GET", "/nodes/{node}/tasks")
def task_list(call):
    """node_tasks [tasks]: with `source` active or all, the active list first
    (tasks not archived yet; one without status shows RUNNING), then unless
    `source=active` the archive `index`, newest first; filtered by user,
    type, vmid, since/until (start time), status; `start`/`limit` count the
    tasks that pass."""
    p = call.params
    start, limit, source = p.get("start", 0), p.get("limit", 50), p.get("source", "archive")
    statuses = {"ok", "warning", "error", "unknown"}
    if p.get("statusfilter") is not None and not p.get("errors"):
        statuses = {s.lower() for s in split_list(p["statusfilter"])}
    elif p.get("errors"):
        statuses.discard("ok")
    count, res = 0, []

    def passes(task):
        nonlocal count
        if p.get("userfilter") and p["userfilter"].lower() not in task["user"].lower():
            return False
        if p.get("typefilter") and task["type"] != p["typefilter"]:
            return False
        if p.get("vmid") and task["id"] != str(p["vmid"]):
            return False
        if p.get("since") is not None and task["starttime"] < p["since"]:
            return False
        if p.get("until") is not None and task["starttime"] > p["until"]:
            return False
        if normalize_status_type(task.get("status")) not in statuses:
            return False
        count += 1
        return count > start and len(res) < limit

    task_dir = call.sim.task_dir
    if source in ("active", "all"):
        for task in read_active(task_dir):
            if not task.pop("saved") and passes(task):
                res.append(dict(task, status=task.get("status") or "RUNNING"))
    if source != "active":
        index = task_dir / "index"
        for line in reversed(index.read_text().splitlines() if index.exists() else []):
            m = INDEX_LINE.fullmatch(line)
            task = decode_upid(m.group(1)) if m else None
            if task:
                task.update(endtime=int(m.group(3), 16) if m.group(3) else None, status=m.group(5))
                if passes(task):
                    res.append(task)
    return [{k: v for k, v in t.items() if v is not None} for t in res]


@handler("GET", "/nodes/{node}/tasks/{upid}/status")
def task_status(call):
    """read_task_status [tasks]: running while the UPID's process runs, then
    stopped with the exitstatus of the log's last line."""
    task, lines = read_task(call)
    if task_running(task["upid"]):
        return dict(task, status="running")
    return dict(task, status="stopped", exitstatus=exit_status(lines[-1] if lines else ""))


@handler("GET", "/nodes/{node}/tasks/{upid}/log")
def task_log(call):
    _, lines = read_task(call)
    start, limit = call.params.get("start", 0), call.params.get("limit", 50)
    return [{"n": i + 1, "t": t} for i, t in enumerate(lines)][start:start + limit]


# =============================================================== the command

class Invocation:
    """One pvesh run: parse, validate, proxy, call, print."""

    def __init__(self, argv, environ, out=sys.stdout, err=sys.stderr):
        self.argv, self.environ, self.out, self.err = list(argv), environ, out, err
        self.noproxy = False
        self.proxied = False
        self.usage = None

    def run(self):
        try:
            self._run()
            return 0
        except ApiError as e:
            self.err.write(e.render(self.usage))
            return 255

    def _run(self):
        argv = self.argv
        while argv and argv[0] in ("--noproxy", "--nooutput"):
            self.noproxy |= argv.pop(0) == "--noproxy"
        if not argv or argv[0] not in ("ls", "usage", *VERBS):
            raise ApiError(f"ERROR: unknown command 'pvesh {argv[0] if argv else ''}'\n"
                           "USAGE: pvesh <COMMAND> [ARGS] [OPTIONS]")
        verb, rest = argv[0], argv[1:]
        self.usage = f"pvesh {verb} <api_path> [OPTIONS] [FORMAT_OPTIONS]"
        if verb == "usage":
            return self._usage(rest)
        path = self._path(rest)
        api = load_api()
        method = VERBS.get(verb, "GET")
        template, uri = api.match(path)
        info = api.endpoints.get(template, {}).get(method) if template else None
        if info is None and verb != "ls":
            raise ApiError(f"no '{verb}' handler for '{path}'")
        if verb == "ls":
            return self._ls(api, path, template, info, rest)
        self._call(verb, method, path, template, uri, info, rest)

    @staticmethod
    def _path(rest):
        """The API path: the first argument (what pvesh looks up the endpoint
        with); after options only the standard options are known."""
        if rest and not rest[0].startswith("-"):
            return rest[0]
        positional = parse_options(rest, STD_OPTIONS)[1]
        if not positional:
            raise ApiError("not enough arguments", code=400)
        return positional[0]

    def _cli(self, verb, info, uri, rest):
        """Options of the command line, checked as pvesh's own method does."""
        props = dict(param_table(info, exclude=uri), **STD_OPTIONS)
        self.usage = usage_line(verb, props)
        values, positional = parse_options(rest, props, extra=bool(info.get("additionalParameters")))
        if len(positional) > 1:
            raise ApiError("too many arguments", code=400)
        params = cook_options(values, props)
        errors = validate(params, props)
        if errors:
            raise param_error(errors)
        return params

    def _call(self, verb, method, path, template, uri, info, rest):
        params = self._cli(verb, info, uri, rest)
        std = {k: params.pop(k) for k in list(params) if k in STD_OPTIONS}
        self.noproxy |= bool(std.get("noproxy"))
        sim = Sim(self.environ)
        self._proxy(sim, info, dict(params, **uri), verb, path)
        params.update(uri)
        props = param_table(info)
        errors = validate(params, props)
        if errors:
            raise param_error(errors)
        fn = HANDLERS.get((method, template))
        if fn is None:
            raise ApiError(f"pvesh simulator: '{method} {template}' is not implemented")
        result = fn(Call(sim, template, method, info, typed(params, props), self.proxied))
        if not std.get("quiet"):
            self.out.write(render(result, info.get("returns"), std.get("output-format", "text")))

    def _proxy(self, sim, info, params, verb, path):
        """proxyto: a method for another node runs there (here: recorded)."""
        node = params.get(info.get("proxyto") or "")
        if not node or node in ("localhost", sim.node):
            return
        if self.noproxy:
            raise ApiError("proxy loop detected - aborting")
        if node not in sim.nodes():
            raise ApiError(f"hostname lookup '{node}' failed - failed to get address info for: "
                           f"{node}: Name or service not known")
        sim.record_proxy(node, verb, Api.normalise(path))
        if not sim.online(node):
            # proxy_handler's ssh to the node fails; run_command's errmsg and ssh's last stderr line [pvesh]
            raise ApiError(f"proxy handler failed: ssh: connect to host {sim.node_ip(node)} port 22: "
                           "No route to host")
        sim.node = node
        self.proxied = True

    def _ls(self, api, path, template, info, rest):
        if info is None:
            raise ApiError(f"no such resource '{path}'")
        params = self._cli("ls", info, dict(api.match(path)[1]), rest)
        children = api.children(template)
        if any(c.startswith("{") for c in children):
            raise ApiError(f"pvesh simulator: 'ls' of '{path}' (dynamic children) is not implemented")
        rows = [{"name": c, "capabilities": self._caps(api, f"{template}/{c}")} for c in children]
        fmt = params.get("output-format", "text")
        if fmt == "text":
            self.out.write("".join(f"{r['capabilities']:<8}{r['name']}\n" for r in rows))
        else:
            self.out.write(render(rows, {"type": "array"}, fmt))

    @staticmethod
    def _caps(api, template):
        methods = api.endpoints.get(template, {})
        if "GET" not in methods:
            get = "--"
        else:
            get = ("D" if api.children(template) else "-") + "r"
        return get + "".join(c if m in methods else "-" for c, m in (("w", "PUT"), ("c", "POST"), ("d", "DELETE")))

    def _usage(self, rest):
        props = {"verbose": STD_OPTIONS["quiet"], "returns": STD_OPTIONS["quiet"],
                 "command": {"name": "command", "type": "string", "required": False,
                             "enum": list(VERBS)}}
        values, positional = parse_options(rest, props)
        params = cook_options(values, props)
        errors = validate(params, props)
        if errors:
            raise param_error(errors)
        if not positional:
            raise ApiError("not enough arguments", code=400)
        path = positional[0]
        api = load_api()
        template, uri = api.match(path)
        found = False
        for verb, method in VERBS.items():
            info = api.endpoints.get(template, {}).get(method) if template else None
            if info is None or params.get("command", verb) != verb:
                continue
            found = True
            props = param_table(info, exclude=uri)
            required = [f"--{n} {type_text(p)}" for n, p in sorted(props.items()) if p.get("required")]
            self.out.write("USAGE: " + " ".join([f"pvesh {verb} {path}"] + required + ["[OPTIONS]"]) + "\n")
            if params.get("verbose"):
                self.out.write("".join(f"  --{n} {type_text(p)}\n" for n, p in sorted(props.items())
                                       if not p.get("required")))
            if params.get("returns"):
                self.out.write("RETURNS: " + json.dumps(info.get("returns"), sort_keys=True, indent=3) + "\n")
        if not found:
            raise ApiError(f"no '{params['command']}' handler for '{path}'" if params.get("command")
                           else f"no such resource '{path}'")


def main(argv=None, environ=None):
    inv = Invocation(sys.argv[1:] if argv is None else argv, os.environ if environ is None else environ)
    sys.exit(inv.run())
