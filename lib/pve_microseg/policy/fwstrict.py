"""Would proxmox-firewall accept this `.fw` file?  A strict checker (pure).

proxmox-firewall (the nftables backend of Proxmox VE) reads every firewall
file with the strict parser of proxmox-ve-config (`firewall::common::Config::
parse` and the guest/host/cluster/bridge wrappers around it).  Any error fails
the whole update, and the node keeps its previous ruleset until the file is
fixed -- one bad `<vmid>.fw` freezes the firewall of the whole node.  pve-
microseg therefore checks a guest file before it rewrites it (refusing to touch
a file that is already rejected) and checks every file it produces.

`check(text, kind)` returns the problems found, in line order; an empty list
means the strict parser accepts the file.  What is checked, per line
(Rust rules, re-implemented from their description; no Rust code is copied):

* lines: split at LF, fully trimmed (Unicode whitespace, so CR goes away);
  blank lines and lines starting with `#` are skipped; content before the
  first section header is an error;
* section headers: `[OPTIONS]`, `[ALIASES]`, `[RULES]` case-insensitive and
  exact (no trailing comment); `[IPSET name]` and `[group name]` with those
  case-sensitive prefixes, whitespace, a name `[A-Za-z][A-Za-z0-9_-]*`, `]`,
  then nothing or a `# comment`; anything else starting with `[` is an invalid
  section; which sections each kind of file may have (guest: no groups; host:
  no ipsets, no groups, no alias entries; vnet: no ipsets); duplicate ipsets
  and groups (and, conservatively, names that differ only in case);
* `[OPTIONS]`: `key: value` split at the first `:`, both sides trimmed;
  duplicate keys (known or not); unknown keys ignored; known keys of the kind
  validated (booleans `0 1 true false yes no on off` in any case, policies,
  log levels, integers, `log_ratelimit`, conntrack helpers);
* `[ALIASES]`: `name cidr [# comment]`, duplicates (case-insensitive, Rust
  lowercases alias names);
* `[IPSET ...]` entries: `[!] address-or-alias [# comment]` where the token is
  an IPv4/IPv6 address or CIDR (host bits allowed, no ranges), `dc/x`,
  `guest/x` or a legacy bare alias name; `10.0.0.1#x` is an error;
* rules (`[RULES]` and `[group]`): `[|]TYPE ACTION [-option value]... [# c]`,
  the direction allowed for the kind of file (in `[RULES]` only, as in Rust),
  `GROUP name` with only `-i`, verdicts and `Macro(VERDICT)`, option names and
  one value each, and the values Rust parses while reading the file: addresses
  (lists, ranges, `+set`, aliases, one IP family), ports (numbers, ranges,
  service names), ICMP types, log levels, `-i net0`..`net30` for guests.

Versions: the rules follow proxmox-firewall 1.2.x (proxmox-ve-config 0.10:
proxmox/proxmox-firewall@a75265939e3aa152a92961d06c26e611c731da67 and
proxmox/proxmox-ve-rs@840d1ede9605c8dacb7bb1329da1ee1a642c0a4e, the snapshot
of tests/fixtures/).  Unscoped names (`+set`, a
bare alias in a rule or an ipset) are accepted as that version does, although
builds before 1.2.0 (PVE 8) reject them; pve-microseg never writes them.

Deliberately stricter than the Rust parser (marked "conservative" below):
things that one proxmox-firewall version accepts and another rejects, or that
parse but make proxmox-firewall fail when it builds the ruleset (unknown macro,
`-i` on a FORWARD rule, `policy_forward: REJECT`, a `#` inside a rule comment,
protocol or service names we cannot vouch for, ...).  A false alarm only makes
pve-microseg refuse to edit a file; a missed error can freeze a node.

Not checked: whether referenced ipsets, aliases and groups exist (they may
live in another file), the file name (a VNet name over 15 characters fails),
anything pve-firewall (Perl) dislikes but Rust accepts (e.g. `-dport` without
`-p`, which Rust ignores).

The guest's own config is checked apart, by `check_guest_config(text)`: for
every local guest that has a `<vmid>.fw`, proxmox-firewall also reads the
`net<N>` lines of its `qemu-server/<vmid>.conf` or `lxc/<vmid>.conf`, with a
parser that knows fewer NIC models and NICs than qemu-server allows; one
guest config it cannot read freezes the node's firewall as a bad `.fw` does.
"""

import ipaddress
import re
from dataclasses import dataclass

from ..parse.guestconf import QEMU_MODELS
from ..parse.fwrule import (ASCII_WS, DIGITS, RuleSyntaxError, ascii_upper, is_name, ltrim, name_at_start,
                            parse_rule, quote, token, trim)

KINDS = ("guest", "cluster", "host", "vnet")


@dataclass(frozen=True)
class FwProblem:
    line: int        # 1-based line number in the file (0 for whole-file problems)
    message: str     # what is wrong, for an administrator
    caution: bool = False   # only some proxmox-firewall versions reject it, or we cannot vouch for it

    def __str__(self):
        return f"line {self.line}: {self.message}" + (
            " (not every proxmox-firewall version rejects this)" if self.caution else "")


def errors(problems):
    """The problems every proxmox-firewall version rejects."""
    return [p for p in problems if not p.caution]


class _Invalid(Exception):
    """A value the strict parser would reject; the message says why."""

    def __init__(self, message, caution=False):
        super().__init__(message)
        self.caution = caution


class _Caution(_Invalid):
    """Rejected by some proxmox-firewall versions, or not vouched for (conservative)."""

    def __init__(self, message):
        super().__init__(message, caution=True)


# --- value types ------------------------------------------------------------------------

_BOOL_WORDS = {"TRUE", "FALSE", "YES", "NO", "ON", "OFF"}        # any case; plus exact 0 and 1

_LOG_LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "nolog")


def _check_bool(value):
    if value not in ("0", "1") and ascii_upper(value) not in _BOOL_WORDS:
        raise _Invalid(f"{quote(value)} is not a boolean (write 0 or 1)")


def _check_log_level(value):
    # LogLevel::from_str is case-sensitive.
    if value == "warn":
        # Conservative: the proxmox-ve-config we read accepts 'warn', pve-firewall does
        # not and we cannot tell whether every proxmox-firewall version does.
        raise _Caution("log level 'warn' is not understood by every firewall version "
                       "(write 'warning')")
    if value not in _LOG_LEVELS:
        raise _Invalid(f"{quote(value)} is not a log level (one of {', '.join(_LOG_LEVELS)}; "
                       "lowercase)")


def _check_policy(value):
    if ascii_upper(value) not in ("ACCEPT", "DROP", "REJECT"):
        raise _Invalid(f"{quote(value)} is not a policy (ACCEPT, DROP or REJECT)")


def _check_forward_policy(value):
    _check_policy(value)
    if ascii_upper(value) == "REJECT":
        # Conservative: Rust's Verdict type would take REJECT, but the PVE API only
        # allows ACCEPT or DROP for forwarded traffic.
        raise _Invalid("a forward policy must be ACCEPT or DROP (REJECT is not allowed "
                       "for forwarded traffic)")


def _check_i64(value):
    if not re.fullmatch(r"[+-]?[0-9]+", value) or not -2**63 <= int(value) < 2**63:
        raise _Invalid(f"{quote(value)} is not an integer")


_CT_HELPERS = {"amanda", "ftp", "irc", "netbios-ns", "pptp", "sane", "sip", "snmp", "tftp"}


def _check_ct_helpers(value):
    # Rust only splits at ',' (an empty value means none); the names are looked up
    # when the ruleset is built.  Conservative: only the helpers PVE knows.
    if value == "":
        return
    for name in value.split(","):
        if name not in _CT_HELPERS:
            raise _Caution(f"unknown conntrack helper {quote(name)} "
                           f"(known: {', '.join(sorted(_CT_HELPERS))})")


def _check_ratelimit(value):
    """`[enable=]<bool>[,burst=<int>][,rate=<int>[/second|minute|hour|day]]` (LogRateLimit)."""
    for element in value.split(","):
        key, eq, val = element.partition("=")
        if not eq:
            _check_bool(element)
            continue
        if not key or not val:
            raise _Invalid(f"{quote(element)} is not a key=value setting")
        if key == "enable":
            _check_bool(val)
        elif key == "burst":
            _check_i64(val)
        elif key == "rate":
            rate, slash, unit = val.partition("/")
            _check_i64(rate)
            if slash and unit not in ("second", "minute", "hour", "day"):
                raise _Invalid(f"{quote(unit)} is not a rate unit (second, minute, hour, day)")
        else:
            raise _Invalid(f"unknown log_ratelimit setting {quote(key)} "
                           "(enable, burst or rate)")


_GUEST_OPTIONS = {
    **dict.fromkeys(("dhcp", "enable", "ipfilter", "ndp", "radv", "macfilter"), _check_bool),
    **dict.fromkeys(("log_level_in", "log_level_out"), _check_log_level),
    **dict.fromkeys(("policy_in", "policy_out"), _check_policy),
    "policy_forward": _check_forward_policy,
}
_HOST_OPTIONS = {
    **dict.fromkeys(("enable", "nftables", "log_nf_conntrack", "ndp", "nf_conntrack_allow_invalid",
                     "nosmurfs", "protection_synflood", "tcpflags"), _check_bool),
    **dict.fromkeys(("log_level_in", "log_level_out", "log_level_forward", "smurf_log_level",
                     "tcp_flags_log_level"), _check_log_level),
    **dict.fromkeys(("nf_conntrack_max", "nf_conntrack_tcp_timeout_established",
                     "nf_conntrack_tcp_timeout_syn_recv", "protection_synflood_burst",
                     "protection_synflood_rate"), _check_i64),
    "nf_conntrack_helpers": _check_ct_helpers,
}
_CLUSTER_OPTIONS = {
    # cluster `enable` is a bool to Rust: the Unix timestamps pve-firewall may use fail.
    **dict.fromkeys(("enable", "ebtables"), _check_bool),
    "log_ratelimit": _check_ratelimit,
    **dict.fromkeys(("policy_in", "policy_out"), _check_policy),
    "policy_forward": _check_forward_policy,
}
_VNET_OPTIONS = {
    "enable": _check_bool,
    "policy_forward": _check_forward_policy,
    "log_level_forward": _check_log_level,
}
_OPTIONS = {"guest": _GUEST_OPTIONS, "host": _HOST_OPTIONS,
            "cluster": _CLUSTER_OPTIONS, "vnet": _VNET_OPTIONS}


# --- addresses --------------------------------------------------------------------------

def _ip_family(text):
    """4 or 6 for a plain address Rust's std::net parsers accept, else None."""
    if re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,3}){3}", text):
        try:
            ipaddress.IPv4Address(text)     # rejects octets > 255 and leading zeros, like Rust
            return 4
        except ValueError:
            return None
    if ":" in text and re.fullmatch(r"[0-9A-Fa-f:.]+", text):   # no %zone: Rust has none
        try:
            ipaddress.IPv6Address(text)
            return 6
        except ValueError:
            return None
    return None


def _cidr_family(text):
    """4 or 6 for `address[/prefix]` (host bits may be set), else None."""
    addr, slash, mask = text.partition("/")
    family = _ip_family(addr)
    if family is None:
        return None
    if slash:
        # Conservative: u8::from_str would also take a leading '+'.
        if not DIGITS.fullmatch(mask) or int(mask) > (32 if family == 4 else 128):
            return None
    return family


def _cidr(text, what):
    family = _cidr_family(text)
    if family is None:
        raise _Invalid(f"{quote(text)} is not an IP address or CIDR{what}")
    return family


def _ip_entry_family(text):
    """A CIDR or an `a-b` range of one family (IpEntry)."""
    family = _cidr_family(text)
    if family is not None:
        return family
    start, dash, last = text.partition("-")
    if dash:
        f1, f2 = _ip_family(start), _ip_family(last)
        if f1 is not None and f1 == f2:
            if ipaddress.ip_address(start) > ipaddress.ip_address(last):
                raise _Invalid(f"address range {quote(text)} runs backwards")
            return f1
    raise _Invalid(f"{quote(text)} is not an IP address, CIDR or range")


_SCOPED = re.compile(r"(?P<scope>[^/]*)/(?P<name>.+)", re.S)


def _scoped_name(text, scopes, what):
    """`scope/name`: the scope must be known; Rust accepts any non-empty name, we
    (conservative) want a name that a section could declare."""
    m = _SCOPED.fullmatch(text)
    if not m or m.group("scope") not in scopes:
        return False
    if not is_name(m.group("name")):
        raise _Caution(f"{quote(text)}: {m.group('name')!r} is not a valid {what} name")
    return True


def _check_address_match(value):
    """A -source/-dest value (IpAddrMatch); returns the IP family of a literal
    list, or None for a set or an alias."""
    if value[:1] == "+":
        if _scoped_name(value, ("+dc", "+guest", "+sdn"), "ipset"):
            return None
        if is_name(value[1:]):
            # Unscoped `+name`: only proxmox-firewall >= 1.2.0 reads it; older
            # builds reject the file.
            return None
        raise _Invalid(f"{quote(value)} is not an ipset reference "
                       "(+dc/<name>, +guest/<name>, +sdn/<name> or +<name>)")
    if _scoped_name(value, ("dc", "guest"), "alias") or is_name(value):
        return None                         # bare names: legacy aliases, as for +name
    families = set()
    for element in value.split(","):
        families.add(_ip_entry_family(element))
    if len(families) > 1:
        raise _Invalid(f"{quote(value)} mixes IPv4 and IPv6")
    return families.pop()


# --- ports, protocols, ICMP -------------------------------------------------------------

# Rust resolves service names through the node's /etc/services while it reads
# the file.  We cannot read the node's file (pure module), so only names that
# Debian's netbase has carried for a long time are accepted (conservative).
_SERVICES = {
    "ftp-data": 20, "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "whois": 43,
    "domain": 53, "tftp": 69, "finger": 79, "http": 80, "kerberos": 88, "pop3": 110,
    "sunrpc": 111, "auth": 113, "ident": 113, "nntp": 119, "ntp": 123, "netbios-ns": 137,
    "netbios-dgm": 138, "netbios-ssn": 139, "imap2": 143, "imap": 143, "snmp": 161,
    "bgp": 179, "ldap": 389, "https": 443, "microsoft-ds": 445, "isakmp": 500,
    "syslog": 514, "printer": 515, "submission": 587, "ipp": 631, "ldaps": 636,
    "rsync": 873, "imaps": 993, "pop3s": 995, "openvpn": 1194, "l2tp": 1701,
    "radius": 1812, "radius-acct": 1813, "nfs": 2049, "mysql": 3306, "iscsi-target": 3260,
    "ms-wbt-server": 3389, "svn": 3690, "ipsec-nat-t": 4500, "sip": 5060,
    "xmpp-client": 5222, "xmpp-server": 5269, "postgresql": 5432, "http-alt": 8080,
    "webcache": 8080, "git": 9418,
}

# Protocol names of Debian's /etc/protocols (what pve-firewall accepts); Rust passes
# names other than the ones it knows to nft, which resolves them the same way.
_PROTOCOLS = set(
    "ip hopopt icmp igmp ggp ipencap st tcp egp igp pup udp hmp xns-idp rdp iso-tp4 dccp "
    "xtp ddp idpr-cmtp ipv6 ipv6-route ipv6-frag idrp rsvp gre esp ah skip ipv6-icmp "
    "ipv6-nonxt ipv6-opts rspf vmtp eigrp ospf ax.25 ipip etherip encap pim ipcomp vrrp "
    "l2tp isis sctp fc mobility-header udplite mpls-in-ip manet hip shim6 wesp rohc "
    "ethernet mptcp icmpv6".split())
_PORT_PROTOCOLS = {"tcp", "6", "udp", "17", "dccp", "33", "sctp", "132", "udplite", "136"}
_ICMP_PROTOCOLS = {"icmp", "1"}
_ICMPV6_PROTOCOLS = {"ipv6-icmp", "icmpv6", "58"}

# ICMP type names.  The proxmox-ve-config sources we could read know only nft
# spellings (echo-request, nd-neighbor-solicit, ...), yet proxmox-firewall's own
# test input (and so its 1.2.x parser) uses the pve-firewall spellings
# (neighbor-solicitation, ttl-zero-during-transit).  We accept what the PVE API
# accepts (pve-firewall's lists) and nothing else (conservative); 'reject-route'
# is left out: we could not confirm that the Rust tables accept it.
_ICMP_TYPES = set(
    "any echo-reply destination-unreachable network-unreachable host-unreachable "
    "protocol-unreachable port-unreachable fragmentation-needed source-route-failed "
    "network-unknown host-unknown network-prohibited host-prohibited TOS-network-unreachable "
    "TOS-host-unreachable communication-prohibited host-precedence-violation "
    "precedence-cutoff source-quench redirect network-redirect host-redirect "
    "TOS-network-redirect TOS-host-redirect echo-request router-advertisement "
    "router-solicitation time-exceeded ttl-zero-during-transit ttl-zero-during-reassembly "
    "parameter-problem ip-header-bad required-option-missing timestamp-request "
    "timestamp-reply address-mask-request address-mask-reply".split())
_ICMPV6_TYPES = set(
    "any destination-unreachable no-route communication-prohibited beyond-scope "
    "address-unreachable port-unreachable failed-policy packet-too-big time-exceeded "
    "ttl-zero-during-transit ttl-zero-during-reassembly parameter-problem bad-header "
    "unknown-header-type unknown-option echo-request echo-reply router-solicitation "
    "router-advertisement neighbor-solicitation neighbour-solicitation "
    "neighbor-advertisement neighbour-advertisement redirect".split())


def _check_port(text):
    if DIGITS.fullmatch(text):
        if int(text) > 65535:
            raise _Invalid(f"port {text} is out of range (0-65535)")
        return int(text)
    if text in _SERVICES:
        return _SERVICES[text]
    raise _Caution(f"{quote(text)} is not a port number or a well-known service name "
                   "(write the number)")


def _check_port_list(value):
    """`port`, `a:b`, service names, comma-separated (PortList)."""
    for entry in value.split(","):
        first, colon, second = entry.partition(":")
        if not colon:
            _check_port(entry)
        elif _check_port(first) > _check_port(second):
            raise _Invalid(f"port range {quote(entry)} runs backwards")


def _check_icmp_type(value, proto):
    v6 = proto in _ICMPV6_PROTOCOLS
    if ascii_upper(value) == "ANY" or DIGITS.fullmatch(value) and int(value) <= 255:
        return
    if value == "reject-route" and v6:
        raise _Caution("icmp-type 'reject-route' is misspelled in proxmox-firewall's table "
                       "and rejects the file (use the number)")
    if value not in (_ICMPV6_TYPES if v6 else _ICMP_TYPES):
        raise _Caution(f"{quote(value)} is not an {'ICMPv6' if v6 else 'ICMP'} type name "
                       "(or a number 0-255)")


def _check_protocol(options):
    proto = options.get("proto")
    if proto is None:
        return                  # -dport/-sport/-icmp-type without -p are ignored by Rust
    if proto in _PORT_PROTOCOLS:
        for key in ("sport", "dport"):
            if key in options:
                try:
                    _check_port_list(options[key])
                except _Invalid as e:
                    raise _Invalid(f"-{key}: {e}") from None
    elif proto in _ICMP_PROTOCOLS or proto in _ICMPV6_PROTOCOLS:
        if "icmp-type" in options:
            _check_icmp_type(options["icmp-type"], proto)
    elif DIGITS.fullmatch(proto):
        if int(proto) > 255:
            raise _Invalid(f"protocol number {proto} is out of range (0-255)")
    elif proto not in _PROTOCOLS:
        # Rust hands unknown names to nft, which then fails to load the whole ruleset.
        raise _Caution(f"{quote(proto)} is not a protocol name from /etc/protocols "
                       "(names are lowercase, or use the number)")


# --- rules ------------------------------------------------------------------------------

# Macro names of proxmox-ve-config's macros.json; Rust looks them up
# case-sensitively when it builds the ruleset and fails on an unknown one.
_MACROS = set(
    "Amanda Auth BGP BitTorrent BitTorrent32 CVS Ceph Citrix DAAP DCC DHCPfwd DHCPv6 DNS "
    "Distcc FTP Finger GNUnet GRE Git HKP HTTP HTTPS ICPV2 ICQ IMAP IMAPS IPIP IPsec "
    "IPsecah IPsecnat IRC Jetdirect L2TP LDAP LDAPS MDNS MSNP MSSQL Mail Munin MySQL NNTP "
    "NNTPS NTP NeighborDiscovery OSPF OpenVPN PBS PCA PMG POP3 POP3S PPtP Ping PostgreSQL "
    "Printer RDP RIP RNDC Razor Rdate Rsync SANE SMB SMBswat SMTP SMTPS SNMP SPAMD "
    "SPICEproxy SSH SVN SixXS Squid Submission Syslog TFTP Telnet Telnets Time Trcrt VNC "
    "VNCL Web Webcache Webmin Whois".split())

_DIRECTIONS = {"guest": ("IN", "OUT"), "host": ("IN", "OUT", "FORWARD"),
               "cluster": ("IN", "OUT", "FORWARD"), "vnet": ("FORWARD",)}


def _check_iface(iface, kind, direction):
    if kind == "guest" and not re.fullmatch(r"net(0|[1-9][0-9]{0,4})", iface or ""):
        raise _Invalid(f"-i {iface}: a guest rule's interface must be net<N>")
    if kind == "guest" and int(iface[3:]) > 30:
        # Rust parses any net<u16>; only net0..net30 exist for proxmox-firewall (conservative).
        raise _Caution(f"-i {iface}: guest interfaces are net0 to net30")
    if direction == "FORWARD":
        # Parses, but building the ruleset fails: "cannot define interfaces for forward
        # direction" (proxmox-firewall rule.rs).
        raise _Invalid("-i cannot be used on a FORWARD rule")


def _check_group_rule(rule, kind, in_rules):
    if set(rule.options) - {"iface"}:
        raise _Invalid("a GROUP rule takes no option but -i")
    if "iface" in rule.options and in_rules and kind == "guest":
        _check_iface(rule.options["iface"], kind, None)


def _check_match_rule(rule, kind, in_rules):
    direction, options = rule.direction, rule.options
    if in_rules and direction not in _DIRECTIONS[kind]:
        raise _Invalid(f"{direction} rules are not allowed in a {kind} firewall file "
                       f"(allowed: {', '.join(_DIRECTIONS[kind])}, GROUP)")
    if rule.macro is not None and rule.macro not in _MACROS:
        raise _Invalid(f"unknown macro {quote(rule.macro)} (macro names are case-sensitive, "
                       "e.g. SSH, HTTP, Ping)")
    if "dport" in options and "icmp-type" in options:
        raise _Invalid("-dport and -icmp-type cannot be used together")
    families = []
    for key in ("source", "dest"):
        if key in options:
            try:
                families.append(_check_address_match(options[key]))
            except _Invalid as e:
                raise _Invalid(f"-{key}: {e}") from None
    if len(families) == 2 and None not in families and families[0] != families[1]:
        raise _Invalid("-source and -dest are of different IP families")
    _check_protocol(options)
    if "log" in options:
        _check_log_level(options["log"])
    if "iface" in options:
        _check_iface(options["iface"], kind if in_rules else None, direction)


def _check_rule(line, kind, in_rules):
    """One rule line of [RULES] (in_rules) or of a [group] section."""
    try:
        rule = parse_rule(line)
    except RuleSyntaxError as e:
        raise _Invalid(str(e), caution=e.caution) from None
    if rule.direction == "GROUP":
        _check_group_rule(rule, kind, in_rules)
    else:
        _check_match_rule(rule, kind, in_rules)


# --- the file ---------------------------------------------------------------------------

def check(text, kind="guest"):
    """kind: 'guest' (<vmid>.fw), 'cluster' (cluster.fw), 'host' (host.fw), 'vnet'
    (sdn/firewall/<vnet>.fw).  Empty list = accepted by the strict parser."""
    if kind not in KINDS:
        raise ValueError(f"unknown firewall file kind {kind!r} (one of {', '.join(KINDS)})")
    return _Checker(kind).run(text or "")


class _Checker:
    def __init__(self, kind):
        self.kind = kind
        self.problems = []
        self.section = None         # None, 'options', 'aliases', 'rules', 'ipset', 'group', 'skip'
        self.option_keys = {}       # key -> line
        self.aliases = {}           # lowercased name -> line
        self.ipsets = {}            # name -> line
        self.groups = {}            # name -> line
        self.folded = {}            # (ipset|group, lowercased name) -> the first name so written

    def problem(self, line_no, message, caution=False):
        self.problems.append(FwProblem(line_no, message, caution))

    def run(self, text):
        for line_no, raw in enumerate(text.split("\n"), start=1):
            line = trim(raw)
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                self.header(line_no, line)
            elif self.section is None:
                self.problem(line_no, f"{quote(line)} comes before any section header "
                                      "such as [OPTIONS] or [RULES]")
                self.section = "skip"
            elif self.section != "skip":
                try:
                    getattr(self, "line_" + self.section)(line_no, line)
                except _Invalid as e:
                    self.problem(line_no, str(e), e.caution)
        return sorted(self.problems, key=lambda p: p.line)

    # -- headers

    def header(self, line_no, line):
        upper = ascii_upper(line)
        if upper in ("[OPTIONS]", "[ALIASES]", "[RULES]"):
            self.section = upper[1:-1].lower()
            return
        self.section = "skip"           # until a valid header says otherwise
        if line.startswith("[IPSET"):
            self.named_header(line_no, line, "IPSET", "ipset", self.ipsets)
        elif line.startswith("[group"):
            self.named_header(line_no, line, "group", "group", self.groups)
        else:
            hint = ""
            if upper.startswith("[IPSET"):
                hint = " (the strict parser needs uppercase '[IPSET')"
            elif upper.startswith("[GROUP"):
                hint = " (the strict parser needs lowercase '[group')"
            elif upper.rstrip().startswith(("[OPTIONS]", "[ALIASES]", "[RULES]")):
                hint = " (nothing may follow the header, not even a comment)"
            self.problem(line_no, f"invalid section {quote(line)}{hint}")

    def named_header(self, line_no, line, prefix, what, seen):
        try:
            name = self.section_name(line[len(prefix) + 1:], what)
        except _Invalid as e:
            self.problem(line_no, f"{quote(line)}: {e}")
            return
        if what == "ipset" and self.kind in ("host", "vnet"):
            self.problem(line_no, f"{quote(line)}: a {self.kind} firewall file cannot declare ipsets")
            return
        if what == "group" and self.kind in ("guest", "host"):
            self.problem(line_no, f"{quote(line)}: a {self.kind} firewall file cannot declare "
                                  "security groups (they belong in cluster.fw)")
            return
        if name in seen:
            self.problem(line_no, f"{what} {name!r} is declared twice (first on line {seen[name]})")
        else:
            clash = self.folded.get((what, name.lower()))      # a lookup: linear in the file's size
            if clash is not None:
                # Rust keeps names case-sensitive, pve-firewall lowercases them and lets
                # the second replace the first (conservative).
                self.problem(line_no, f"{what} {name!r} differs from {clash!r} (line "
                                      f"{seen[clash]}) only in case; pve-firewall merges them",
                             caution=True)
        seen.setdefault(name, line_no)
        self.folded.setdefault((what, name.lower()), name)
        self.section = what

    @staticmethod
    def section_name(tail, what):
        """`<ws>NAME] [# comment]` after the `[IPSET`/`[group` prefix."""
        if not tail or tail[0] not in ASCII_WS:
            raise _Invalid(f"incomplete {what} section header (expected a space and a name)")
        found = name_at_start(ltrim(tail))
        if not found:
            raise _Invalid(f"expected a {what} name ([A-Za-z][A-Za-z0-9_-]*)")
        name, rest = found
        if not rest.startswith("]"):
            raise _Invalid(f"expected ']' right after the {what} name {name!r}")
        rest = ltrim(rest[1:])
        if rest and not rest.startswith("#"):
            raise _Invalid(f"unexpected text after the {what} section header: {quote(rest)} "
                           "(only a '# comment' may follow)")
        return name

    # -- section contents

    def line_options(self, line_no, line):
        key, colon, value = line.partition(":")
        if not colon:
            raise _Invalid(f"{quote(line)} is not a 'key: value' option")
        key, value = trim(key), trim(value)
        if key in self.option_keys:
            raise _Invalid(f"option {key!r} is set twice (first on line {self.option_keys[key]})")
        self.option_keys[key] = line_no
        checker = _OPTIONS[self.kind].get(key)     # unknown keys are ignored by Rust
        if checker is None:
            return
        if "#" in value:
            raise _Invalid(f"option {key!r}: a comment is not allowed after an option value "
                           f"({quote(value)})")
        try:
            checker(value)
        except _Invalid as e:
            raise _Invalid(f"option {key!r}: {e}") from None

    def line_aliases(self, line_no, line):
        if self.kind == "host":
            raise _Invalid("a host firewall file cannot declare aliases")
        found = name_at_start(line)
        if not found:
            raise _Invalid(f"expected an alias name ([A-Za-z][A-Za-z0-9_-]*) at {quote(line)}")
        name, rest = found
        if rest[:1] not in tuple(ASCII_WS):
            # Rust would read `foo::1` as alias foo = ::1 (conservative: refuse).
            raise _Caution(f"alias name {name!r} must be followed by whitespace and an address")
        address, rest = token(ltrim(rest))
        if not address:
            raise _Invalid(f"alias {name!r} has no address")
        _cidr(address, f" (alias {name!r})")
        if rest and not rest.startswith("#"):
            raise _Invalid(f"unexpected text after the address of alias {name!r}: {quote(rest)}")
        key = name.lower()          # Rust lowercases alias names
        if key in self.aliases:
            raise _Invalid(f"alias {name!r} is declared twice (first on line {self.aliases[key]}; "
                           "alias names are not case-sensitive)")
        self.aliases[key] = line_no

    def line_ipset(self, line_no, line):
        rest = line[1:] if line.startswith("!") else line
        entry, rest = token(ltrim(rest))
        if not entry:
            raise _Invalid("ipset entry without an address")
        if _cidr_family(entry) is None:
            try:
                known = _scoped_name(entry, ("dc", "guest"), "alias")
            except _Invalid as e:
                raise _Invalid(f"ipset entry {e}") from None
            if not known and not is_name(entry):
                why = ""
                if "#" in entry:
                    why = " (a comment needs whitespace before the '#')"
                elif "-" in entry and _ip_family(entry.partition("-")[0]):
                    why = " (ranges are not allowed in ipsets)"
                raise _Invalid(f"ipset entry {quote(entry)} is not an IP address, CIDR or "
                               f"alias (dc/<name>, guest/<name>){why}")
        if rest and not rest.startswith("#"):
            raise _Invalid(f"unexpected text after the ipset entry {quote(entry)}: "
                           f"{quote(rest)} (a comment needs '# ' after a space)")

    def line_rules(self, line_no, line):
        _check_rule(line, self.kind, in_rules=True)

    def line_group(self, line_no, line):
        _check_rule(line, self.kind, in_rules=False)


# --- the guest config (qemu-server/<vmid>.conf, lxc/<vmid>.conf) ------------------------
#
# proxmox-firewall's Config::parse_guests (proxmox/proxmox-firewall
# proxmox-firewall/src/config.rs@a75265939e3aa152a92961d06c26e611c731da67) reads
# the guest config of every local guest that has a <vmid>.fw and hands it to
# NetworkConfig::parse (proxmox/proxmox-ve-rs proxmox-ve-config/src/guest/vm.rs
# @840d1ede9605c8dacb7bb1329da1ee1a642c0a4e); any error there fails the whole
# update.  What that parser does, re-implemented from its behaviour:
#
# * lines (LF, a CR before it dropped) trimmed; blank and `#` lines skipped; the
#   first line starting with `[` ends the main section;
# * a line starting with `net` that has a `:` and something after it is a NIC:
#   the key must be `net` + ASCII digits with an index 0..30 (qemu-server and
#   pve-container allow net0..net31: $MAX_NETS in qemu-server src/PVE/QemuServer.pm
#   @e6352be67f70042a7433a3a3c712b36d02f9f7cb, $MAX_LXC_NETWORKS in
#   proxmox/pve-container src/PVE/LXC/Config.pm@94f558522ef61f9858c39c264d0ac4e697e49268),
#   a key twice is an error;
# * the value is read as a QEMU NIC property string, else as an LXC one:
#   QEMU needs `model` and `macaddr`, where `<model>=<MAC>` is understood only
#   for e1000, rtl8139, virtio and vmxnet3; LXC needs `type` and `hwaddr`; a
#   model must be one of virtio, e1000, rtl8139, vmxnet3, veth (qemu-server
#   also offers e1000-82540em, e1000-82544gc, e1000-82545em, e1000e, i82551,
#   i82557b, i82559er, ne2k_isa, ne2k_pci, pcnet: $nic_model_list in
#   proxmox/qemu-server src/PVE/QemuServer/Network.pm
#   @e6352be67f70042a7433a3a3c712b36d02f9f7cb); a MAC is six pairs of hex
#   digits; `firewall` a boolean; LXC `ip` dhcp, manual or an IPv4 address
#   with an optional prefix, `ip6` also auto; other keys are not looked at.

NFT_NIC_MODELS = ("virtio", "e1000", "rtl8139", "vmxnet3", "veth")   # NetworkDeviceModel
NFT_MODEL_KEYS = ("e1000", "rtl8139", "virtio", "vmxnet3")            # `<model>=<MAC>` (key alias)
NFT_MAX_NET = 30                                                      # index_from_net_key: 0..31
_MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
_SCHEMA_TRUE = ("1", "on", "yes", "true")
_SCHEMA_FALSE = ("0", "off", "no", "false")


@dataclass(frozen=True)
class GuestConfigProblem:
    """Why proxmox-firewall cannot read a guest config (one per file: its
    parser stops at the first)."""

    line: int        # 1-based line in the guest config
    key: str         # the config key, e.g. 'net0' or 'net31'
    message: str

    def __str__(self):
        return f"line {self.line}: {self.key}: {self.message}"


def _property_pairs(value):
    """[(key or None, value)] of a property string, as proxmox-schema splits it
    (quoted values with \\, \\" and \\n escapes); _Invalid if it cannot."""
    out, data = [], value
    while data:
        key = None
        if not data.startswith('"'):
            cut = min((i for i in (data.find(","), data.find("=")) if i >= 0), default=-1)
            if cut >= 0 and data[cut] == "=":
                key, data = data[:cut], data[cut + 1:]
            if not data.startswith('"'):
                comma = data.find(",")
                item, data = (data, "") if comma < 0 else (data[:comma], data[comma + 1:])
                out.append((key, item))
                continue
        i, item = 1, []
        while i < len(data) and data[i] != '"':
            if data[i] == "\\":
                i += 1
                if i == len(data) or data[i] not in '"\\n':
                    raise _Invalid("a quoted value has an unsupported escape or no end")
                item.append("\n" if data[i] == "n" else data[i])
            else:
                item.append(data[i])
            i += 1
        if i == len(data):
            raise _Invalid("a quoted value has no closing quote")
        data = data[i + 1:]
        if data and not data.startswith(","):
            raise _Invalid("text after a quoted value")
        data = data[1:]
        out.append((key, "".join(item)))
    return out


def _nic_fields(value, alias_keys):
    fields = {}
    for key, item in _property_pairs(value):
        if key is None:
            raise _Invalid(f"{quote(item)} has no key (expected key=value)")
        for k, v in ((("model", key), ("macaddr", item)) if key in alias_keys else ((key, item),)):
            if k in fields:
                raise _Invalid(f"{k!r} is given twice")
            fields[k] = v
    return fields


def _check_nic_model(model):
    if model not in NFT_NIC_MODELS:
        raise _Invalid(f"NIC model {model} is unknown to proxmox-firewall "
                       f"(it knows {', '.join(NFT_NIC_MODELS)})")


def _check_nic_common(fields, model_key, mac_key):
    for key in (model_key, mac_key):
        if key not in fields:
            raise _Invalid(f"no {key!r}")
    _check_nic_model(fields[model_key])
    if not _MAC.fullmatch(fields[mac_key]):
        raise _Invalid(f"{mac_key} {quote(fields[mac_key])} is not a MAC address")
    if "firewall" in fields and fields["firewall"].lower() not in _SCHEMA_TRUE + _SCHEMA_FALSE:
        raise _Invalid(f"firewall={fields['firewall']} is not a boolean")


def _check_qemu_nic(value):
    fields = _nic_fields(value, NFT_MODEL_KEYS)
    if "model" not in fields:
        for key in fields:
            if key in QEMU_MODELS:          # qemu-server's `<model>=<MAC>` for a model Rust lacks
                _check_nic_model(key)
    _check_nic_common(fields, "model", "macaddr")


def _check_lxc_nic(value):
    fields = _nic_fields(value, ())
    _check_nic_common(fields, "type", "hwaddr")
    for key, words, family in (("ip", ("dhcp", "manual"), 4), ("ip6", ("dhcp", "auto", "manual"), 6)):
        if key in fields and fields[key] not in words and _cidr_family(fields[key]) != family:
            raise _Invalid(f"{key}={fields[key]} is not an IPv{family} address or one of {', '.join(words)}")


def check_guest_config(text, guest_type="qemu"):
    """The first problem proxmox-firewall's guest config parser has with this
    config, as a one-element list (empty: it reads the config).  guest_type
    ('qemu' or 'lxc') only picks which reading the message explains: the
    parser itself tries the QEMU reading first, then the LXC one."""
    seen = {}
    for line_no, raw in enumerate((text or "").split("\n"), start=1):
        line = trim(raw)
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            break
        if not line.startswith("net"):
            continue
        key, colon, value = line.partition(":")
        if not colon or not value:
            continue
        key, value = trim(key), trim(value)
        m = re.fullmatch(r"net([0-9]+)", key)
        if not m or int(m.group(1)) > NFT_MAX_NET:
            why = (f"proxmox-firewall knows only net0 to net{NFT_MAX_NET}" if m else
                   "proxmox-firewall reads every key starting with 'net' as a NIC")
            return [GuestConfigProblem(line_no, key, why)]
        index = int(m.group(1))
        if index in seen:
            return [GuestConfigProblem(line_no, key, f"the same NIC index as line {seen[index]}")]
        seen[index] = line_no
        problems = []
        for check in (_check_qemu_nic, _check_lxc_nic):
            try:
                check(value)
                break
            except _Invalid as e:
                problems.append(str(e))
        else:
            why = problems[1] if guest_type == "lxc" else problems[0]
            return [GuestConfigProblem(line_no, key, why)]
    return []
