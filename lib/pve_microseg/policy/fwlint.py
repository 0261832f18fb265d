"""`pve-microseg check`: a linter for the cluster's firewall configuration (pure).

Input: the firewall files as text (cluster.fw, each node's host.fw, each
guest's <vmid>.fw, each sdn/firewall/<vnet>.fw), which nodes run the
nftables backend and which proxmox-firewall this node has installed.
Output: findings, each with file, line, severity and a message that says
what to do.

* error: a file proxmox-firewall's strict parser rejects (fwstrict; one such
  file freezes the firewall of a whole node); a guest's .fw file on a node
  with the nftables backend when proxmox-firewall cannot read the guest's
  config (an e1000e NIC, net31: that freezes the node just the same; on a
  node without the nftables backend it is only info); a VNet firewall that
  is on while a node lacks the nftables backend (it does nothing there);
* warning: a rule that can never match because an earlier enabled rule in the
  same file and direction matches everything it would (the classic "ACCEPT
  tcp 80" before "DROP tcp 80 from 10.0.0.0/8"); a reference to an alias or
  ipset that is not declared; an ipfilter-net<N> entry with a prefix, which
  admits a whole subnet as source; a datacenter firewall that is on with
  policy_in DROP and no management IP set (lockout risk); this node with
  nftables: 1 and a proxmox-firewall older than 1.2.0 (the IP part of
  ipfilter does not filter) or none installed (protection.py);
* info: disabled rules (`|`); another node with nftables: 1, whose
  proxmox-firewall `check` cannot see (`status` asks every node).

Shadowing is decided conservatively: only when every field of the earlier
rule provably covers the later one (no restriction, the same value, a
containing network or port range); macros, sets and aliases compare equal
only to themselves.

Time grows linearly with the size of a file (a guest owner can write ~35,000
rules into the 1 MiB pmxcfs allows): a rule identical to an earlier one is
found by its signature in one lookup, each distinct earlier rule is compared
at most once per later rule, and one file gets at most MAX_COMPARISONS such
comparisons; a file that needs more gets an info finding naming the first
rule whose shadowing was not fully checked (identical rules are still
reported after it).
"""

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

from ..parse import fwfile, fwrule
from ..parse.fwrule import FwRule
from . import antispoof, fwstrict, protection

_NAME_REF = re.compile(r"^(?:(dc|guest)/)?([A-Za-z][A-Za-z0-9_-]*)$")
# rule pairs compared for shadowing in one file: every pair of a file of ~450
# distinct rules, well under a second
MAX_COMPARISONS = 100_000
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    severity: str          # error, warning, info
    message: str

    def __str__(self):
        return f"{self.file}:{self.line}: {self.severity}: {self.message}"


@dataclass(frozen=True)
class Rule:
    """A rule line of a file, read with the one rule grammar (parse/fwrule.py)."""

    line: int
    text: str
    rule: FwRule

    @property
    def enabled(self):
        return self.rule.enabled

    @property
    def direction(self):
        return self.rule.direction

    @property
    def action(self):
        return self.rule.action

    @property
    def macro(self):
        return self.rule.macro

    def get(self, name):
        return self.rule.get(name)

    @property
    def signature(self):
        """What covers() reads: two rules with the same signature cover each
        other (GROUP rules never cover: None)."""
        if self.direction == "GROUP":
            return None
        return (self.direction, self.macro) + tuple(self.get(n) for n in _COVER_FIELDS)


_COVER_FIELDS = ("iface", "proto", "icmp-type", "source", "dest", "dport", "sport")


def parse_rule(line_no, line):
    """One [RULES] line -> Rule, or None if proxmox-firewall cannot read it
    (the strict checker reports those)."""
    try:
        return Rule(line_no, line.rstrip("\n"), fwrule.parse_rule(fwrule.trim(line)))
    except fwrule.RuleSyntaxError:
        return None


# ------------------------------------------------------------ coverage

@lru_cache(maxsize=4096)
def _networks(value):
    """The networks of a literal address list, or None (sets, aliases, ranges)."""
    out = []
    for part in value.split(","):
        try:
            out.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            return None
    return tuple(out)


@lru_cache(maxsize=4096)
def _ports(value):
    """The (lo, hi) of numeric port specs, or None (service names)."""
    out = []
    for part in value.split(","):
        lo, _, hi = part.partition(":")
        if not (lo.isascii() and lo.isdigit()) or (hi and not (hi.isascii() and hi.isdigit())):
            return None
        out.append((int(lo), int(hi or lo)))
    return tuple(out)


def _covers(a, b, parse, inside):
    """Does spec a cover spec b?  None = no restriction; equal texts cover;
    otherwise both must parse and every part of b lie inside some part of a."""
    if a is None or a == b:
        return True
    if b is None:
        return False
    pa, pb = parse(a), parse(b)
    return pa is not None and pb is not None and all(any(inside(y, x) for x in pa) for y in pb)


def _covers_addr(a, b):
    return _covers(a, b, _networks, lambda y, x: x.version == y.version and y.subnet_of(x))


def _covers_ports(a, b):
    return _covers(a, b, _ports, lambda y, x: x[0] <= y[0] and y[1] <= x[1])


def covers(a, b):
    """True if every packet rule b matches is matched by rule a."""
    if a.direction != b.direction or "GROUP" in (a.direction, b.direction):
        return False
    if a.macro or b.macro:
        if a.macro != b.macro:
            if a.macro or a.get("proto") or a.get("dport") or a.get("sport") or a.get("icmp-type"):
                return False
    for name in ("iface", "proto", "icmp-type"):
        if a.get(name) is not None and (a.get(name) or "").lower() != (b.get(name) or "").lower():
            return False
    return (_covers_addr(a.get("source"), b.get("source")) and _covers_addr(a.get("dest"), b.get("dest"))
            and _covers_ports(a.get("dport"), b.get("dport")) and _covers_ports(a.get("sport"), b.get("sport")))


# ------------------------------------------------------------ the linter

def _rules_by_section(fw):
    """[(section title, [Rule])] for [RULES] and each [group]; header line numbers kept."""
    out, line_no = [], 0
    for s in fw.sections:
        line_no += 1 if s.header is not None else 0
        start = line_no
        rules = []
        for i, line in enumerate(s.lines):
            if s.kind in ("rules", "group") and line.strip() and not line.strip().startswith("#"):
                r = parse_rule(start + i + 1, line)
                if r is not None:
                    rules.append(r)
        line_no += len(s.lines)
        if s.kind in ("rules", "group"):
            out.append(("[RULES]" if s.kind == "rules" else f"[group {s.name}]", rules))
    return out


def _declared(fw, kind):
    if kind == "aliases":
        sec = fw.find("aliases")
        return {l.split()[0].lower() for l in (sec.lines if sec else []) if l.strip() and not l.strip().startswith("#")}
    return {(s.name or "").lower() for s in fw.ipsets()}


def shadowed(rules, budget=MAX_COMPARISONS):
    """([(rule, the first earlier enabled rule that covers it)] for the
    enabled rules of one section, the first rule whose check the budget cut
    short or None, the comparisons made).  Linear: see the module's docstring."""
    found, cut, compared = [], None, 0
    first_of = {}               # signature -> (its first rule, the rule that covers that one, or None)
    distinct = []               # the first enabled rule of each signature, in order
    for r in rules:
        sig = r.signature
        if not r.enabled or sig is None:        # a GROUP rule neither covers nor is covered
            continue
        if sig in first_of:                     # identical rules cover each other: one lookup
            first, by = first_of[sig]
            found.append((r, by or first))
            continue
        by = None
        if cut is None:
            for earlier in distinct:
                if compared >= budget:
                    cut = r
                    break
                compared += 1
                if covers(earlier, r):
                    by = earlier
                    break
        if by is not None:
            found.append((r, by))
        first_of[sig] = (r, by)
        distinct.append(r)
    return found, cut, compared


def lint_file(name, text, kind, cluster_fw=None):
    """Findings for one file; cluster_fw (FwFile) resolves dc/ names."""
    findings = []
    refusal = antispoof.fw_refusal(text) if kind == "guest" else None
    if refusal:
        line = text.count("\n", 0, text.index("\r")) + 1
        findings.append(Finding(name, line, "error", f"the pve-microseg hookscript refuses to start the "
                                                     f"guest with this file: {refusal}"))
    for p in fwstrict.check(text, kind):
        findings.append(Finding(name, p.line, "warning" if p.caution else "error",
                                f"proxmox-firewall {'may reject' if p.caution else 'rejects'} this file: "
                                f"{p.message}"))
    fw = fwfile.parse(text)
    local_sets, local_aliases = _declared(fw, "ipsets"), _declared(fw, "aliases")
    dc_sets = _declared(cluster_fw, "ipsets") if cluster_fw else set()
    dc_aliases = _declared(cluster_fw, "aliases") if cluster_fw else set()
    budget = MAX_COMPARISONS
    for title, rules in _rules_by_section(fw):
        found, cut, compared = shadowed(rules, budget)
        budget -= compared
        for r, earlier in found:
            same = earlier.action == r.action
            findings.append(Finding(
                name, r.line, "warning",
                f"never matches: line {earlier.line} ({earlier.text.strip()}) already "
                f"{'matches' if same else earlier.action + 's'} everything it would "
                f"({'redundant' if same else 'its ' + r.action + ' never applies'})"))
        if cut is not None:
            findings.append(Finding(
                name, cut.line, "info", f"{title}: from this rule on, shadowing by a different earlier rule "
                                        f"was not checked: {len(rules)} rules are too many to compare every "
                                        f"pair ({MAX_COMPARISONS} comparisons per file); identical rules are "
                                        "still reported"))
        for r in rules:
            if not r.enabled:
                findings.append(Finding(name, r.line, "info", f"disabled rule in {title}: {r.text.strip()}"))
                continue
            for field in ("source", "dest"):
                for ref in (r.get(field) or "").split(","):
                    ref = ref.strip()
                    findings += _reference(name, r.line, ref, local_sets, local_aliases, dc_sets, dc_aliases)
    starts = _section_starts(fw)
    for index, section in fw.ipfilter_sets().items():
        for j, line in enumerate(section.lines):
            entry = line.split("#", 1)[0].strip().lstrip("!").strip()
            if "/" in entry:
                try:
                    net = ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    continue
                if net.num_addresses > 1:
                    findings.append(Finding(name, starts[id(section)] + j + 1, "warning",
                                            f"ipfilter-net{index} entry {entry} admits a whole subnet as the "
                                            "guest's source address; write host addresses"))
    return findings


def _section_starts(fw):
    """{id(section): the line number before its first line}, in one pass."""
    starts, n = {}, 0
    for s in fw.sections:
        n += 1 if s.header is not None else 0
        starts[id(s)] = n
        n += len(s.lines)
    return starts


def _reference(name, line, ref, local_sets, local_aliases, dc_sets, dc_aliases):
    if not ref or ref[0].isdigit() or ":" in ref or "-" in ref and ref[0].isdigit():
        return []
    if ref.startswith("+"):
        target = ref[1:]
        if target.startswith("sdn/"):
            return []
        m = _NAME_REF.match(target)
        if not m:
            return []
        scope, set_name = m.group(1), m.group(2).lower()
        known = (dc_sets if scope == "dc" else local_sets if scope == "guest" else local_sets | dc_sets)
        if set_name not in known:
            return [Finding(name, line, "warning", f"rule uses ipset {ref}, which is not declared "
                                                   f"({'cluster.fw' if scope == 'dc' else 'this file or cluster.fw'})")]
        return []
    m = _NAME_REF.match(ref)
    if m:
        scope, alias = m.group(1), m.group(2).lower()
        known = (dc_aliases if scope == "dc" else local_aliases if scope == "guest" else local_aliases | dc_aliases)
        if alias not in known:
            return [Finding(name, line, "warning", f"rule uses alias {ref}, which is not declared")]
    return []


def backend_findings(nftables_nodes, here=None, installed=None):
    """Findings on the proxmox-firewall of the nodes with nftables: 1: this
    node's (`here`, its `installed` version, 'not installed' or unknown)
    is checked; another node's cannot be seen from here."""
    findings = []
    for n in sorted(nftables_nodes):
        name = f"nodes/{n}/host.fw"
        if n != here:
            findings.append(Finding(name, 0, "info", f"{n}: nftables: 1; its proxmox-firewall is not checked from "
                                    f"here (before {protection.IPFILTER_FIXED} the IP part of ipfilter does not "
                                    "filter): 'pve-microseg status' asks every node"))
            continue
        installed = installed or protection.UNKNOWN
        found = protection.proxmox_firewall_problem(installed)
        if found:
            findings.append(Finding(name, 0, "warning", f"{n}: {found[1]}"))
        elif installed.startswith(protection.UNKNOWN):
            findings.append(Finding(name, 0, "info", f"{n}: nftables: 1, but its proxmox-firewall is {installed}"))
    return findings



@dataclass(frozen=True)
class GuestConfig:
    """The config of a guest that has a .fw file, as proxmox-firewall reads it."""

    fw_file: str            # e.g. firewall/101.fw
    vmid: int
    node: str
    type: str               # qemu or lxc
    name: str               # e.g. nodes/pve1/qemu-server/101.conf
    text: str


def lint_guest_config(gc, nftables):
    """proxmox-firewall reads the config of each local guest with a .fw file;
    one it cannot read freezes the node's firewall (fwstrict.check_guest_config)."""
    problems = fwstrict.check_guest_config(gc.text, gc.type)
    if not problems:
        return []
    p = problems[0]
    what = f"guest {gc.vmid} {p.key} ({gc.name}:{p.line}): {p.message}"
    if nftables:
        return [Finding(gc.fw_file, 0, "error",
                        f"{what}: proxmox-firewall cannot read this guest's config, so with this file in place "
                        f"it stops updating the firewall of {gc.node} (the node keeps its old ruleset for every "
                        "guest); remove the file or change the NIC")]
    return [Finding(gc.fw_file, 0, "info",
                    f"{what}: harmless while {gc.node} runs pve-firewall, but with nftables: 1 in its host.fw "
                    f"this file would stop every firewall update of {gc.node}")]


def lint_cluster(files, nftables_nodes, all_nodes, here=None, installed=None, guest_configs=()):
    """files: [(name, text, kind)] with cluster.fw first if present; here,
    installed: this node and its proxmox-firewall (backend_findings);
    guest_configs: [GuestConfig] of the guests that have a .fw file."""
    cluster_text = next((t for n, t, k in files if k == "cluster"), "")
    cluster_fw = fwfile.parse(cluster_text)
    findings = []
    for gc in guest_configs:
        findings += lint_guest_config(gc, gc.node in nftables_nodes)
    for name, text, kind in files:
        findings += lint_file(name, text, kind, cluster_fw)
        if kind == "vnet" and fwfile.parse(text).option("enable") == "1":
            missing = sorted(set(all_nodes) - set(nftables_nodes))
            if missing:
                findings.append(Finding(name, 0, "error",
                                        f"the VNet firewall is on, but {', '.join(missing)} do(es) not run the "
                                        "nftables backend (nftables: 1 in host.fw): it does nothing there"))
    if cluster_fw.option("enable") == "1" and (cluster_fw.option("policy_in") or "DROP").upper() != "ACCEPT":
        mgmt = cluster_fw.find("ipset", "management")
        entries = [l for l in (mgmt.lines if mgmt else []) if l.strip() and not l.strip().startswith("#")]
        if not entries:
            findings.append(Finding("cluster.fw", 0, "warning",
                                    "the datacenter firewall is on with inbound policy DROP and no "
                                    "'management' IP set: SSH and the web interface (8006) are only "
                                    "reachable if a rule allows them (recovery: 'pve-firewall stop' at "
                                    "the console)"))
    findings += backend_findings(nftables_nodes, here, installed)
    return ordered(findings)


def ordered(findings):
    """Errors first, then warnings, then notes; by file and line."""
    return sorted(findings, key=lambda f: (_SEVERITY_ORDER[f.severity], f.file, f.line))
