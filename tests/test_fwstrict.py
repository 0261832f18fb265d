"""fwstrict: the strict (proxmox-firewall) verdict on `.fw` files.

Fixture verdicts come from tests/fixtures (see /work/shared/fixtures/README.md);
the inline cases pin one rule each, with a passing and a failing side.
"""

import dataclasses
import re
from pathlib import Path

import pytest

from pve_microseg.policy import fwstrict
from pve_microseg.policy.fwstrict import FwProblem, check

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PF = "pve-firewall"
RS = "proxmox-firewall/proxmox-firewall/tests/input"


def first(text, kind="guest"):
    problems = check(text, kind)
    return problems[0] if problems else None


# --- fixtures ---------------------------------------------------------------------------

@pytest.mark.parametrize("path,kind", [
    (f"{RS}/100.fw", "guest"),
    (f"{RS}/101.fw", "guest"),
    (f"{RS}/cluster.fw", "cluster"),
    (f"{RS}/host.fw", "host"),
    (f"{PF}/test/test-vm-ipfilter2/200.fw", "guest"),
    (f"{PF}/test/test-vm-ipfilter1/cluster.fw", "cluster"),
    (f"{PF}/test/test-vm-aliases1/100.fw", "guest"),
    (f"{PF}/test/test-errors1/100.fw", "guest"),
    (f"{PF}/debian/example/100.fw", "guest"),
])
def test_fixture_accepted(path, kind):
    assert check((FIXTURES / path).read_text(), kind) == []


@pytest.mark.parametrize("path,kind,line", [
    (f"{PF}/test/test-vm-ipfilter1/100.fw", "guest", 5),
    (f"{PF}/debian/example/cluster.fw", "cluster", 38),
    (f"{PF}/test/test-ipset1/cluster.fw", "cluster", 10),
])
def test_fixture_rejected_for_lowercase_ipset(path, kind, line):
    problems = check((FIXTURES / path).read_text(), kind)
    assert problems, "the strict parser rejects this file"
    assert problems[0].line == line
    assert "invalid section" in problems[0].message
    assert "uppercase '[IPSET'" in problems[0].message
    assert all("[ipset" in p.message for p in problems)


@pytest.mark.parametrize("path,kind", [
    (f"{PF}/test/test-vm-ipfilter1/100.fw", "guest"),
    (f"{PF}/debian/example/cluster.fw", "cluster"),
    (f"{PF}/test/test-ipset1/cluster.fw", "cluster"),
])
def test_fixture_accepted_once_ipset_is_uppercase(path, kind):
    # the lowercase header is the only problem: the set contents themselves are valid
    text = re.sub(r"^\[ipset", "[IPSET", (FIXTURES / path).read_text(), flags=re.M)
    assert check(text, kind) == []


def test_fixture_crlf_is_accepted():
    text = (FIXTURES / RS / "100.fw").read_text().replace("\n", "\r\n")
    assert check(text, "guest") == []


def test_fixture_guest_file_is_not_a_host_file():
    # a guest file with [IPSET] and [ALIASES] entries is invalid as host.fw
    problems = check((FIXTURES / RS / "101.fw").read_text(), "host")
    assert [p.line for p in problems] == [11, 13]


def test_fixture_cluster_file_as_vnet_file():
    problems = check((FIXTURES / RS / "cluster.fw").read_text(), "vnet")
    messages = "\n".join(p.message for p in problems)
    assert "cannot declare ipsets" in messages
    assert "IN rules are not allowed in a vnet" in messages


# --- interface --------------------------------------------------------------------------

def test_problem_is_frozen_dataclass():
    p = FwProblem(3, "x")
    assert (p.line, p.message) == (3, "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.line = 4


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "  \t\n#x\n"])
def test_empty_file_is_accepted(text):
    for kind in fwstrict.KINDS:
        assert check(text, kind) == []


def test_unknown_kind_raises():
    with pytest.raises(ValueError, match="kind"):
        check("", "bridge")


def test_default_kind_is_guest():
    text = "[RULES]\nFORWARD ACCEPT\n"
    assert check(text) == check(text, "guest") != []
    assert check(text, "host") == []


def test_problems_in_line_order_and_all_reported():
    text = "[OPTIONS]\nenable: 2\n[ipset a]\n[RULES]\nIN BOGUS\nIN ACCEPT\n"
    problems = check(text)
    assert [p.line for p in problems] == [2, 3, 5]
    assert all(isinstance(p, FwProblem) and p.message for p in problems)


def test_safe_subset_of_the_reference_is_accepted():
    text = ("[OPTIONS]\n\nenable: 1\nipfilter: 1\n\n"
            "[IPSET ipfilter-net0] # managed by pve-microseg\n\n"
            "10.20.30.5\nfe80::be24:11ff:fe2c:69ec\n\n"
            "[RULES]\n\nIN ACCEPT -p tcp -dport 22\n")
    assert check(text, "guest") == []


# --- line handling ----------------------------------------------------------------------

@pytest.mark.parametrize("text,line,words", [
    ("  [OPTIONS]  \n\tenable: 1\t\n", None, None),
    ("[OPTIONS]\r\nenable: 1\r\n", None, None),
    ("\xa0[OPTIONS]\u3000\nenable: 1\n", None, None),             # Unicode whitespace is trimmed
    ("   # comment\n[OPTIONS]\n  # another\nenable: 1\n", None, None),
    ("enable: 1\n[OPTIONS]\n", 1, "before any section"),
    ("\n\nIN ACCEPT\n[RULES]\n", 3, "before any section"),
    ("\x1c[OPTIONS]\n", 1, "before any section"),                # not whitespace to Rust
    ("\ufeff[OPTIONS]\n", 1, "before any section"),              # a BOM breaks the file
    ("[RULES]\nIN ACCEPT\r-p tcp\n", 2, "carriage return"),
])
def test_line_handling(text, line, words):
    p = first(text)
    if line is None:
        assert p is None, p
    else:
        assert p is not None and p.line == line and words in p.message, p


def test_only_first_orphan_line_is_reported():
    assert [p.line for p in check("a\nb\nc\n[OPTIONS]\nx\n")] == [1, 5]


# --- section headers --------------------------------------------------------------------

@pytest.mark.parametrize("header", [
    "[OPTIONS]", "[options]", "[Options]", "[ALIASES]", "[aliases]", "[RULES]", "[rules]",
    "[IPSET x]", "[IPSET a-b_C9]", "[IPSET  x]", "[IPSET\tx]", "[IPSET x] # comment",
    "[IPSET x]#comment", "[IPSET x]   #", "[IPSET ipfilter-net0] # managed by pve-microseg",
])
def test_header_accepted_in_guest(header):
    assert check(header + "\n") == []


@pytest.mark.parametrize("header,words", [
    ("[ipset x]", "uppercase '[IPSET'"),
    ("[Ipset x]", "uppercase '[IPSET'"),
    ("[ipset x] # c", "uppercase '[IPSET'"),
    ("[OPTIONS] # comment", "not even a comment"),
    ("[RULES]x", "not even a comment"),
    ("[ OPTIONS]", "invalid section"),
    ("[optıons]", "invalid section"),            # dotless i: not ASCII case-folding
    ("[FOO]", "invalid section"),
    ("[", "invalid section"),
    ("[IPSETx]", "incomplete ipset section"),
    ("[IPSET]", "incomplete ipset section"),
    ("[IPSET ]", "expected a ipset name"),
    ("[IPSET 1x]", "expected a ipset name"),
    ("[IPSET _x]", "expected a ipset name"),
    ("[IPSET x ]", "expected ']'"),
    ("[IPSET x.y]", "expected ']'"),
    ("[IPSET x", "expected ']'"),
    ("[IPSET x] y", "only a '# comment'"),
    ("[IPSET x]]", "only a '# comment'"),
])
def test_header_rejected(header, words):
    p = first(header + "\n")
    assert p is not None and p.line == 1 and words in p.message, p


@pytest.mark.parametrize("header,kind,words", [
    ("[group g]", "cluster", None),
    ("[group g] # comment", "cluster", None),
    ("[group g]", "vnet", None),
    ("[GROUP g]", "cluster", "lowercase '[group'"),
    ("[Group g]", "cluster", "lowercase '[group'"),
    ("[groupg]", "cluster", "incomplete group section"),
    ("[group g-]x", "cluster", "only a '# comment'"),
    ("[group g]", "guest", "cannot declare security groups"),
    ("[group g]", "host", "cannot declare security groups"),
])
def test_group_header(header, kind, words):
    p = first(header + "\n", kind)
    if words is None:
        assert p is None, p
    else:
        assert p is not None and p.line == 1 and words in p.message, p


@pytest.mark.parametrize("kind,text,line,words", [
    ("cluster", "[OPTIONS]\n[ALIASES]\n[IPSET s]\n[RULES]\n[group g]\n", None, None),
    ("guest", "[OPTIONS]\n[ALIASES]\n[IPSET s]\n[RULES]\n", None, None),
    ("host", "[OPTIONS]\n[RULES]\n", None, None),
    ("host", "[ALIASES]\n", None, None),                          # an empty section is fine
    ("host", "[ALIASES]\na 10.0.0.1\n", 2, "cannot declare aliases"),
    ("host", "[IPSET s]\n", 1, "cannot declare ipsets"),
    ("vnet", "[IPSET s]\n10.0.0.1\n", 1, "cannot declare ipsets"),
    ("vnet", "[OPTIONS]\n[RULES]\n[ALIASES]\na 10.0.0.1\n[group g]\nIN ACCEPT\n", None, None),
    ("guest", "[group g]\nIN ACCEPT\n", 1, "cannot declare security groups"),
])
def test_sections_per_kind(kind, text, line, words):
    p = first(text, kind)
    if line is None:
        assert p is None, p
    else:
        assert p is not None and p.line == line and words in p.message, p


def test_content_of_an_invalid_section_is_skipped():
    # Rust stops at the header; reporting each entry as well would only be noise
    assert [p.line for p in check("[ipset x]\nnot an address\n[RULES]\nIN BOGUS\n")] == [1, 4]


@pytest.mark.parametrize("kind,text,line,words", [
    ("guest", "[IPSET a]\n[IPSET b]\n[IPSET a]\n", 3, "declared twice (first on line 1)"),
    ("guest", "[IPSET a]\n[RULES]\n[IPSET a] # again\n", 3, "declared twice"),
    ("guest", "[IPSET net]\n[IPSET NET]\n", 2, "only in case"),
    ("cluster", "[group g]\n[group g]\n", 2, "declared twice"),
    ("cluster", "[group g]\n[group G]\n", 2, "only in case"),
    ("cluster", "[IPSET g]\n[group g]\n", None, None),             # separate namespaces
    ("guest", "[OPTIONS]\n[RULES]\n[OPTIONS]\n[RULES]\n", None, None),
])
def test_duplicate_sections(kind, text, line, words):
    p = first(text, kind)
    if line is None:
        assert p is None, p
    else:
        assert p is not None and p.line == line and words in p.message, p


# --- options ----------------------------------------------------------------------------

def opt(kind, *lines):
    return first("[OPTIONS]\n" + "".join(line + "\n" for line in lines), kind)


@pytest.mark.parametrize("value", ["0", "1", "true", "false", "TRUE", "False", "yes", "No",
                                   "on", "OFF", " 1 ", "1\t"])
def test_bool_spellings_accepted(value):
    assert opt("guest", f"enable:{value}") is None


@pytest.mark.parametrize("value", ["2", "01", "y", "enabled", "", "1 # on", "1 1", "ye s",
                                   "tru\u0131"])
def test_bool_spellings_rejected(value):
    p = opt("guest", f"enable: {value}")
    assert p is not None and p.line == 2 and "'enable'" in p.message, p


@pytest.mark.parametrize("kind,line,ok", [
    ("guest", "Enable: banana", True),               # keys are case-sensitive: unknown, ignored
    ("guest", "ips_queues: 0:3", True),              # split at the first ':' only
    ("guest", "layer2_protocols: ARP,802_1Q,IPX,NetBEUI,PPP", True),
    ("guest", "ips: 1 # comment", True),             # unknown key: value never looked at
    ("guest", "ndp:1", True),
    ("guest", "  macfilter  :  0  ", True),
    ("guest", ": 1", True),                          # an empty key is just an unknown key
    ("guest", "enable 1", False),
    ("guest", "enable: 1 # on", False),
    ("guest", "policy_in: drop", True),
    ("guest", "policy_in: Reject", True),
    ("guest", "policy_out: DENY", False),
    ("guest", "policy_in:", False),
    ("guest", "policy_forward: DROP", True),
    ("guest", "policy_forward: REJECT", False),      # conservative
    ("guest", "log_level_in: info", True),
    ("guest", "log_level_out: nolog", True),
    ("guest", "log_level_in: INFO", False),          # log levels are case-sensitive
    ("guest", "log_level_in: warn", False),          # conservative
    ("guest", "log_level_in:", False),
    ("guest", "nftables: banana", True),             # a host key means nothing in a guest file
    ("host", "nftables: banana", False),
    ("host", "nftables: 1", True),
    ("host", "log_level_forward: warning", True),
    ("host", "tcp_flags_log_level: bogus", False),
    ("host", "nf_conntrack_max: 262144", True),
    ("host", "nf_conntrack_max: -5", True),
    ("host", "nf_conntrack_max: 1e6", False),
    ("host", "nf_conntrack_max: 99999999999999999999", False),
    ("host", "protection_synflood_rate: 4OO", False),
    ("host", "nf_conntrack_helpers: ftp,sip", True),
    ("host", "nf_conntrack_helpers:", True),
    ("host", "nf_conntrack_helpers: ftp,bogus", False),
    ("host", "policy_in: DROP", True),               # not a host option: ignored
    ("cluster", "enable: 1", True),
    ("cluster", "enable: 1714000000", False),        # pve-firewall timestamps are not bools
    ("cluster", "ebtables: no", True),
    ("cluster", "policy_forward: ACCEPT", True),
    ("cluster", "policy_forward: REJECT", False),
    ("cluster", "log_ratelimit: 1", True),
    ("cluster", "log_ratelimit: burst=12,enable=1,rate=2/second", True),
    ("cluster", "log_ratelimit: enable=0,rate=123/hour", True),
    ("cluster", "log_ratelimit: 0,burst=5,rate=10", True),
    ("cluster", "log_ratelimit: 2", False),
    ("cluster", "log_ratelimit: enabled=0,rate=123", False),
    ("cluster", "log_ratelimit: enable=0,rate=123,", False),
    ("cluster", "log_ratelimit: rate=123/proxmox", False),
    ("cluster", "log_ratelimit: rate=/second", False),
    ("cluster", "log_ratelimit: burst=", False),
    ("cluster", "log_ratelimit:", False),
    ("vnet", "enable: 1", True),
    ("vnet", "policy_forward: drop", True),
    ("vnet", "policy_forward: REJECT", False),
    ("vnet", "log_level_forward: debug", True),
    ("vnet", "log_level_forward: verbose", False),
    ("vnet", "policy_in: BOGUS", True),              # not a vnet option: ignored
])
def test_option_values(kind, line, ok):
    p = opt(kind, line)
    if ok:
        assert p is None, p
    else:
        assert p is not None and p.line == 2, p


@pytest.mark.parametrize("lines,line", [
    (["enable: 1", "enable: 1"], 3),
    (["enable: 1", "enable:0"], 3),
    (["ips: 1", "ips: 1"], 3),                       # duplicates of unknown keys count too
    (["enable: 1", "[RULES]", "[OPTIONS]", "enable: 1"], 5),
])
def test_duplicate_option(lines, line):
    p = opt("guest", *lines)
    assert p is not None and p.line == line and "set twice" in p.message, p


def test_warn_log_level_gets_a_hint():
    p = opt("host", "log_level_in: warn")
    assert p is not None and "write 'warning'" in p.message, p


def test_option_keys_differing_in_case_are_not_duplicates():
    assert opt("guest", "enable: 1", "Enable: 1") is None


# --- ipset entries ----------------------------------------------------------------------

def ipset(entry, kind="guest"):
    return first(f"[IPSET s]\n{entry}\n", kind)


@pytest.mark.parametrize("entry", [
    "10.0.0.1", "10.0.0.0/24", "10.0.0.5/24", "127.0.0.1/8", "0.0.0.0/0", "10.0.0.1/32",
    "!10.0.0.1", "! 10.0.0.1", "!\t10.0.0.0/8", "fe80::1", "FE80::1/64", "::", "::ffff:1.2.3.4",
    "2001:db8::/32", "dc/network1", "guest/x", "dc/NET", "mynetworkalias",
    "10.0.0.1 # comment", "10.0.0.1 #comment", "10.0.0.1\t#", "! 10.0.0.0/8  #nomatch - x # y",
])
def test_ipset_entry_accepted(entry):
    assert ipset(entry) is None


@pytest.mark.parametrize("entry,words", [
    ("10.0.0.1#x", "comment needs whitespace"),
    ("10.0.0.1 10.0.0.2", "unexpected text"),
    ("10.0.0.1 x", "unexpected text"),
    ("10.0.0.1-10.0.0.5", "ranges are not allowed"),
    ("10.0.0.256", "not an IP address"),
    ("010.0.0.1", "not an IP address"),
    ("10.0.0.1/33", "not an IP address"),
    ("10.0.0.1/", "not an IP address"),
    ("10.0.0.1/+8", "not an IP address"),
    ("fe80::/129", "not an IP address"),
    ("fe80::1%eth0", "not an IP address"),
    ("1.2.3", "not an IP address"),
    ("!", "without an address"),
    ("foo/x", "not an IP address"),
    ("+dc/x", "not an IP address"),
    ("dc/", "not an IP address"),
    ("dc/a.b", "not a valid alias name"),
    ("1abc", "not an IP address"),
])
def test_ipset_entry_rejected(entry, words):
    p = ipset(entry)
    assert p is not None and p.line == 2 and words in p.message, p


# --- aliases ----------------------------------------------------------------------------

def alias(entry, kind="cluster"):
    return first(f"[ALIASES]\n{entry}\n", kind)


@pytest.mark.parametrize("entry", [
    "net 10.0.0.0/8", "net 10.0.0.0/8 # comment", "net\t::1", "a 198.51.100.100/32",
    "local_network 10.0.0.5/24", "test-_123-___-a---- 10.0.0.1/32", "v6 2001:db8:0:85a3::ac1f:8001",
])
def test_alias_accepted(entry):
    assert alias(entry) is None
    assert alias(entry, "guest") is None


@pytest.mark.parametrize("entry,words", [
    ("1net 10.0.0.1", "expected an alias name"),
    ("_net 10.0.0.1", "expected an alias name"),
    ("net", "followed by whitespace"),
    ("net ", "followed by whitespace"),
    ("net::1", "followed by whitespace"),           # conservative (Rust reads alias 'net')
    ("net 10.0.0.1-10.0.0.2", "not an IP address"),
    ("net 10.0.0.1,10.0.0.2", "not an IP address"),
    ("net dc/other", "not an IP address"),
    ("net 10.0.0.1 extra", "unexpected text"),
    ("net 10.0.0.1#c", "not an IP address"),
])
def test_alias_rejected(entry, words):
    p = alias(entry)
    assert p is not None and p.line == 2 and words in p.message, p


@pytest.mark.parametrize("entries,line", [
    (["net 10.0.0.1", "net 10.0.0.2"], 3),
    (["Net 10.0.0.1", "other 10.0.0.3", "NET 10.0.0.2"], 4),      # Rust lowercases names
])
def test_duplicate_alias(entries, line):
    p = first("[ALIASES]\n" + "\n".join(entries) + "\n", "cluster")
    assert p is not None and p.line == line and "declared twice" in p.message, p


# --- rules ------------------------------------------------------------------------------

def rule(text, kind="guest", section="[RULES]"):
    return first(f"{section}\n{text}\n", kind)


@pytest.mark.parametrize("kind,text", [
    ("guest", "IN ACCEPT"),
    ("guest", "in accept"),
    ("guest", "Out Drop"),
    ("guest", "IN REJECT # a comment"),
    ("guest", "|IN ACCEPT -p tcp -dport 22"),
    ("guest", "| OUT DROP"),
    ("guest", "IN ACCEPT -p tcp -dport 80 -sport 1024:65535"),
    ("guest", "OUT DROP -p udp --dport 53"),
    ("guest", "IN ACCEPT --proto tcp --dport 22,80,443"),
    ("guest", "IN ACCEPT -p 6 -dport 22"),
    ("guest", "IN ACCEPT -p tcp -dport ssh:80,https"),
    ("guest", "IN ACCEPT -p gre"),
    ("guest", "IN ACCEPT -p 47"),
    ("guest", "IN SSH(ACCEPT) -i net0"),
    ("guest", "IN SSH(accept) -i net30"),
    ("guest", "IN HTTP(REJECT) -log info"),
    ("guest", "IN ACCEPT -log nolog"),
    ("guest", "GROUP g"),
    ("guest", "GROUP g -i net0 # comment"),
    ("guest", "|GROUP g --iface net1"),
    ("guest", "IN ACCEPT -source 10.0.0.1,10.0.0.2 -dest 10.1.0.0/16"),
    ("guest", "IN ACCEPT -source 10.0.0.1-10.0.0.10"),
    ("guest", "IN ACCEPT -source 192.168.0.1/24,127.0.0.1-127.255.255.0,172.16.0.1"),
    ("guest", "IN ACCEPT -source fe80::1 -dest fe80::/10"),
    ("guest", "IN ACCEPT -source +dc/set -dest 10.0.0.1"),
    ("guest", "IN ACCEPT -source +guest/ipfilter-net0"),
    ("guest", "IN ACCEPT -source +sdn/public-all"),
    ("guest", "IN ACCEPT -source +legacyset"),
    ("guest", "IN ACCEPT -source dc/alias -dest guest/other"),
    ("guest", "IN ACCEPT -source legacyalias"),
    ("guest", "IN ACCEPT -source 10.0.0.1 -dest +dc/v6set"),        # family known only later
    ("guest", "IN ACCEPT -p icmp -icmp-type echo-request"),
    ("guest", "IN ACCEPT -p icmp -icmp-type 8"),
    ("guest", "IN ACCEPT -p icmp -icmp-type any"),
    ("guest", "IN ACCEPT -p icmp -icmp-type host-unreachable"),
    ("guest", "IN ACCEPT -p ipv6-icmp -icmp-type neighbor-solicitation"),
    ("guest", "IN ACCEPT -p icmpv6 -icmp-type ttl-zero-during-transit"),
    ("guest", "IN ACCEPT -p 58 -icmp-type 135"),
    ("guest", "IN ACCEPT -dport 80"),                 # no -p: Rust ignores the port
    ("guest", "IN ACCEPT -dport nonsense -sport nonsense"),
    ("guest", "IN ACCEPT -icmp-type nonsense"),       # no -p: ignored as well
    ("guest", "IN ACCEPT -p udp -icmp-type nonsense"),
    ("guest", "IN ACCEPT -p icmp -dport echo-request"),
    ("guest", "IN ACCEPT -source 1.2.3.4#not-a-comment-in-the-value"),
    ("host", "IN ACCEPT -i vmbr0"),
    ("host", "FORWARD DROP --source +sdn/guest-ipam-101 --dest +sdn/guest-ipam-101"),
    ("host", "IN DHCPv6(ACCEPT) -log nolog"),
    ("cluster", "GROUP network1 -i eth0"),
    ("cluster", "FORWARD DROP -p ipv6-icmp -log nolog -icmp-type ttl-zero-during-transit"),
    ("vnet", "FORWARD ACCEPT -p tcp -dport 22"),
    ("vnet", "GROUP g"),
    ("vnet", "GROUP g -i eth0"),                      # skipped on forward, not an error
])
def test_rule_accepted(kind, text):
    assert rule(text, kind) is None


@pytest.mark.parametrize("kind,text,words", [
    ("guest", "FORWARD ACCEPT", "FORWARD rules are not allowed in a guest"),
    ("vnet", "IN ACCEPT", "IN rules are not allowed in a vnet"),
    ("vnet", "OUT DROP", "OUT rules are not allowed in a vnet"),
    ("guest", "ACCEPT", "expected a rule type"),
    ("guest", "group g", "expected a rule type"),     # GROUP is case-sensitive
    ("guest", "GROUPS g", "keyword GROUP"),
    ("guest", "GROUP", "security group name"),
    ("guest", "GROUP 1g", "security group name"),
    ("guest", "GROUP g -p tcp", "no option but -i"),
    ("guest", "GROUP g(x)", "expected an option"),
    ("guest", "IN", "expected ACCEPT, DROP, REJECT"),
    ("guest", "IN ALLOW", "not a verdict"),
    ("guest", "IN SSH(ALLOW)", "not a verdict"),
    ("guest", "IN SSH(ACCEPT", "expected ')'"),
    ("guest", "IN SSH()", "expected a verdict"),
    ("guest", "IN ssh(ACCEPT)", "unknown macro"),
    ("guest", "IN Nonexistent(ACCEPT)", "unknown macro"),
    ("guest", "IN ACCEPT tcp", "expected an option starting with '-'"),
    ("guest", "IN ACCEPT ---p tcp", "expected an option name"),
    ("guest", "IN ACCEPT - p tcp", "expected an option name"),
    ("guest", "IN ACCEPT -x 1", "unknown rule option -x"),
    ("guest", "IN ACCEPT -icmp_type 8", "unknown rule option"),
    ("guest", "IN ACCEPT -p", "followed by whitespace"),
    ("guest", "IN ACCEPT -p ", "followed by whitespace"),
    ("guest", "IN ACCEPT -p=tcp", "followed by whitespace"),
    ("guest", "IN ACCEPT -log -p tcp", "expected an option starting"),
    ("guest", "IN ACCEPT -p tcp -p udp", "given twice"),
    ("guest", "IN ACCEPT -p tcp --proto udp", "given twice"),
    ("guest", "IN ACCEPT -i net0 --iface net1", "given twice"),
    ("guest", "IN ACCEPT -i eth0", "must be net<N>"),
    ("guest", "IN ACCEPT -i net", "must be net<N>"),
    ("guest", "IN ACCEPT -i net01", "must be net<N>"),
    ("guest", "IN ACCEPT -i net31", "net0 to net30"),
    ("guest", "GROUP g -i tap100i0", "must be net<N>"),
    ("host", "FORWARD ACCEPT -i vmbr0", "FORWARD rule"),
    ("vnet", "FORWARD ACCEPT -i eth0", "FORWARD rule"),
    ("guest", "IN ACCEPT -source 10.0.0.1,fe80::1", "mixes IPv4 and IPv6"),
    ("guest", "IN ACCEPT -source 10.0.0.1 -dest fe80::1", "different IP families"),
    ("guest", "IN ACCEPT -source 10.0.0.5-10.0.0.1", "runs backwards"),
    ("guest", "IN ACCEPT -source 10.0.0.1-fe80::1", "not an IP address, CIDR or range"),
    ("guest", "IN ACCEPT -source 10.0.0.0/", "not an IP address"),
    ("guest", "IN ACCEPT -source 10.0.0.1,", "not an IP address"),
    ("guest", "IN ACCEPT -source +foo/x", "not an ipset reference"),
    ("guest", "IN ACCEPT -source +dc/", "not an ipset reference"),
    ("guest", "IN ACCEPT -source +dc/a,b", "not a valid ipset name"),
    ("guest", "IN ACCEPT -source dcc/test", "not an IP address"),
    ("guest", "IN ACCEPT -source 1nope", "not an IP address"),
    ("guest", "IN ACCEPT -p tcp -dport 70000", "out of range"),
    ("guest", "IN ACCEPT -p tcp -dport 90:80", "runs backwards"),
    ("guest", "IN ACCEPT -p tcp -dport 0::1337", "not a port number"),
    ("guest", "IN ACCEPT -p tcp -dport 22,", "not a port number"),
    ("guest", "IN ACCEPT -p udp -sport nosuchservice", "-sport"),
    ("guest", "IN ACCEPT -p tcp -dport +22", "not a port number"),
    ("guest", "IN ACCEPT -p TCP", "not a protocol name"),
    ("guest", "IN ACCEPT -p bogus", "not a protocol name"),
    ("guest", "IN ACCEPT -p 256", "out of range"),
    ("guest", "IN ACCEPT -p icmp -icmp-type bogus", "not an ICMP type"),
    ("guest", "IN ACCEPT -p icmp -icmp-type 256", "not an ICMP type"),
    ("guest", "IN ACCEPT -p icmp -icmp-type neighbor-solicitation", "not an ICMP type"),
    ("guest", "IN ACCEPT -p icmpv6 -icmp-type network-unreachable", "not an ICMPv6 type"),
    ("guest", "IN ACCEPT -p icmpv6 -icmp-type reject-route", "misspelled"),
    ("guest", "IN ACCEPT -p icmp -dport 22 -icmp-type 8", "cannot be used together"),
    ("guest", "IN ACCEPT -dport 22 -icmp-type 8", "cannot be used together"),
    ("guest", "IN ACCEPT -log warn", "write 'warning'"),
    ("guest", "IN ACCEPT -log INFO", "not a log level"),
    ("guest", "IN ACCEPT # a # b", "inside the rule comment"),
    ("guest", "IN ACCEPT #", "empty '#' comment"),
    ("cluster", "GROUP g -log info", "no option but -i"),
])
def test_rule_rejected(kind, text, words):
    p = rule(text, kind)
    assert p is not None and p.line == 2 and words in p.message, p


@pytest.mark.parametrize("text,ok", [
    ("FORWARD ACCEPT -p tcp", True),        # no direction restriction inside a group
    ("IN ACCEPT -i eth0", True),            # nor the guest net<N> rule
    ("OUT ACCEPT -i vmbr0 -p udp -dport 53", True),
    ("FORWARD ACCEPT -i eth0", False),
    ("IN ACCEPT -p tcp -dport nope", False),
    ("IN ssh(ACCEPT)", False),
])
def test_group_section_rules(text, ok):
    p = rule(text, "cluster", section="[group g]")
    assert (p is None) == ok, p


def test_rule_problem_line_numbers():
    text = "[RULES]\n\nIN ACCEPT\n# IN BOGUS\nIN BOGUS\n|OUT DROP -p nope\n"
    assert [p.line for p in check(text)] == [5, 6]


def test_version_dependent_findings_are_cautions():
    from pve_microseg.policy.fwstrict import check, errors
    cautious = check("[RULES]\n\nIN ACCEPT -p tcp -dport 22 # ssh # admins\n", "guest")
    assert cautious and all(p.caution for p in cautious) and errors(cautious) == []
    assert "not every proxmox-firewall version" in str(cautious[0])
    hard = check("[ipset x]\n10.0.0.1\n", "guest")
    assert hard and not hard[0].caution and errors(hard) == hard


# --- the guest config (what proxmox-firewall reads of qemu-server/lxc configs) ----------

QS = "qemu-server/src/test/parse-config-input/cloudinit-snapshot.conf"
DERIVED = "derived/qemu-server"


@pytest.mark.parametrize("path,guest_type", [
    (QS, "qemu"),                      # vmxnet3, with [special:cloudinit] and a snapshot
    (f"{RS}/100.conf", "lxc"),         # proxmox-firewall's own test input: read by its test
    (f"{RS}/101.conf", "qemu"),        # no NIC at all
])
def test_guest_configs_proxmox_firewall_reads(path, guest_type):
    assert fwstrict.check_guest_config((FIXTURES / path).read_text(), guest_type) == []


@pytest.mark.parametrize("name,line,key,words", [
    ("e1000e.conf", 9, "net0", ("NIC model e1000e", "virtio, e1000, rtl8139, vmxnet3")),
    ("net31.conf", 10, "net31", ("net0 to net30",)),
])
def test_guest_configs_proxmox_firewall_cannot_read(name, line, key, words):
    problems = fwstrict.check_guest_config((FIXTURES / DERIVED / name).read_text(), "qemu")
    assert [(p.line, p.key) for p in problems] == [(line, key)]
    assert all(w in problems[0].message for w in words), problems[0].message


@pytest.mark.parametrize("model", ["e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82551",
                                   "i82557b", "i82559er", "ne2k_isa", "ne2k_pci", "pcnet"])
def test_every_qemu_server_model_proxmox_firewall_lacks(model):
    for value in (f"{model}=BC:24:11:2C:69:EC,bridge=web", f"model={model},macaddr=BC:24:11:2C:69:EC"):
        problems = fwstrict.check_guest_config(f"net0: {value}\n")
        assert len(problems) == 1 and f"NIC model {model} is unknown" in problems[0].message


@pytest.mark.parametrize("model", ["virtio", "e1000", "rtl8139", "vmxnet3"])
def test_the_models_proxmox_firewall_knows(model):
    assert fwstrict.check_guest_config(f"net0: {model}=BC:24:11:2C:69:EC,bridge=web,firewall=1,queues=4\n") == []
    assert fwstrict.check_guest_config(f"net30: model={model},macaddr=bc:24:11:2c:69:ec\n") == []


@pytest.mark.parametrize("text,key", [
    ("net31: virtio=BC:24:11:2C:69:EC\n", "net31"),
    ("net31: name=eth31,hwaddr=BC:24:11:47:83:11,ip=dhcp,type=veth\n", "net31"),   # a container's too
    ("net33: name=eth0,hwaddr=BC:24:11:47:83:11,type=veth\n", "net33"),     # Rust's own test vector
    ("netqwe: name=eth0,hwaddr=BC:24:11:47:83:11,type=veth\n", "netqwe"),   # Rust's own test vector
    # no ':' right after the key: Rust splits at the first ':' (inside the MAC)
    ("net0 name=eth0,bridge=data,hwaddr=BC:24:11:47:83:11,type=veth\n", "net0 name=eth0,bridge=data,hwaddr=BC"),
    ("  net0: virtio=BC:24:11:2C:69:EC\nnet0: virtio=BC:24:11:2C:69:ED\n", "net0"),   # twice
    ("net0: virtio=BC:24:11:2C:69\n", "net0"),                               # not a MAC
    ("net0: virtio=BC:24:11:2C:69:EC,firewall=2\n", "net0"),
    ("net0: bridge=web,firewall=1\n", "net0"),                               # no model, no MAC
    ('net0: virtio=BC:24:11:2C:69:EC,x="open\n', "net0"),
    ("net1: name=eth0,hwaddr=BC:24:11:47:83:11,ip=10.0.0.300/24,type=veth\n", "net1"),
    ("net1: name=eth0,hwaddr=BC:24:11:47:83:11,ip6=auto6,type=veth\n", "net1"),
    ("net1: name=eth0,hwaddr=BC:24:11:47:83:11,ip=fd00::1/64,type=veth\n", "net1"),
])
def test_guest_config_lines_proxmox_firewall_rejects(text, key):
    problems = fwstrict.check_guest_config(text, "lxc" if "type=veth" in text else "qemu")
    assert [p.key for p in problems] == [key], problems


@pytest.mark.parametrize("text", [
    "",
    "net0:\n",                                   # nothing after ':': skipped
    "net0 \n",                                   # no ':': skipped
    "name: net0\nnameserver: 192.0.2.53\n",      # other keys are not looked at
    "#net31: e1000e=BC:24:11:2C:69:EC\n",        # the description
    "net0: virtio=BC:24:11:2C:69:EC\n[snap]\nnet31: e1000e=BC:24:11:2C:69:EC\n",   # main section only
    "net0:\tvirtio=bc:24:11:2c:69:ec,bridge=web,firewall=yes,link_down=1,trunks=2;3\r\n",
    'net0: virtio=BC:24:11:2C:69:EC,x="a,\\"b\\""\n',                  # a quoted value
    "net2: name=eth0,bridge=data,firewall=0,hwaddr=BC:24:11:47:83:12,ip=123.123.123.123/24,type=veth  \n",
    "net5: name=eth0,hwaddr=BC:24:11:47:83:13,ip=manual,ip6=fd80::1/64,gw6=fd80::ff,type=veth\n",
])
def test_guest_config_lines_proxmox_firewall_reads(text):
    assert fwstrict.check_guest_config(text, "lxc" if "type=veth" in text else "qemu") == []


def test_lxc_message_explains_the_lxc_reading():
    text = "net0: name=eth0,hwaddr=BC:24:11:47:83:11,ip=dhcp,type=macvlan\n"
    assert "NIC model macvlan" in fwstrict.check_guest_config(text, "lxc")[0].message
