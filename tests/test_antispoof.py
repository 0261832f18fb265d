"""antispoof: which addresses a NIC may use, and the .fw edit."""

import dataclasses

import pytest
from hypothesis import assume, given, settings, strategies as st

from pve_microseg.policy import antispoof, fwstrict
from pve_microseg.model.config import Config
from pve_microseg.model.ipam import IpamState
from pve_microseg.parse import microseg_yaml
from pve_microseg.policy import resolve
from pve_microseg.parse import fwfile, guestconf, ipam
from pve_microseg.model.errors import FirewallFileError
from pve_microseg.model.sdn import EMPTY

MAC = "BC:24:11:2C:69:EC"
LL = "fe80::be24:11ff:fe2c:69ec"
MARK = antispoof.IPFILTER_MARK + "\n"
YAML = """\
bridges:
  web:
    gateway-mac: 02:00:00:00:01:01
    gateway-ip: 10.100.0.1
    subnets: [10.100.0.0/24, 2001:db8:100::/64]
"""


def cfg(extra=""):
    doc = microseg_yaml.parse_document(YAML + extra, "microseg.yaml")
    bridges = tuple(resolve.resolve(s, EMPTY) for s in doc.bridges)
    return Config(bridges=bridges, hookscript=doc.hookscript, guests=doc.guests)


def vm(nets, ipconfig=""):
    return guestconf.parse(nets + ipconfig, 101, "qemu", "101.conf")


NO_IPAM = IpamState(path=None, by_guest={}, owners={})


def test_cloud_init_address_plus_link_local():
    g = vm(f"net0: virtio={MAC},bridge=web,firewall=1\n", "ipconfig0: ip=10.100.0.5/24,gw=10.100.0.1\n")
    p = antispoof.plan(g, cfg(), NO_IPAM)
    (nic,) = p.nics
    assert nic.addresses == ("10.100.0.5", LL)
    assert nic.sources == ("ipconfig0",)
    assert p.refusals == ()


def test_nic_on_other_bridge_is_left_alone():
    g = vm(f"net0: virtio={MAC},bridge=vmbr0,firewall=1\n")
    assert antispoof.plan(g, cfg(), NO_IPAM).nics == ()


def test_ipam_and_cloud_init_add_up():
    state = IpamState(path="x", by_guest={("101", MAC.lower()): ("10.100.0.9", "2001:db8:100::9")},
                           owners={"10.100.0.9": "101"})
    g = vm(f"net0: virtio={MAC},bridge=web,firewall=1\n", "ipconfig0: ip=10.100.0.5/24\n")
    nic = antispoof.plan(g, cfg(), state).nics[0]
    assert nic.addresses == ("10.100.0.5", "10.100.0.9", "2001:db8:100::9", LL)
    assert nic.sources == ("IPAM", "ipconfig0")


def test_operator_mapping_is_the_whole_list_and_can_add_a_nic():
    extra = "guests:\n  101:\n    net0: [10.100.0.50]\n    net1: 192.0.2.7\n"
    g = vm(f"net0: virtio={MAC},bridge=web,firewall=1\nnet1: virtio=BC:24:11:00:00:02,bridge=vmbr0,firewall=1\n",
           "ipconfig0: ip=10.100.0.5/24\n")
    net0, net1 = antispoof.plan(g, cfg(extra), NO_IPAM).nics
    assert net0.addresses == ("10.100.0.50", LL)
    assert net1.addresses == ("192.0.2.7", "fe80::be24:11ff:fe00:2")
    assert "guests.101.net1" in net1.why


def test_strict_refuses_firewall_off_and_unknown_addresses():
    g = vm(f"net0: virtio={MAC},bridge=web\n")
    p = antispoof.plan(g, cfg(), NO_IPAM)
    assert len(p.refusals) == 2
    assert "firewall=0" in p.refusals[0]
    assert "no address is known" in p.refusals[1] and "guests: 101: net0:" in p.refusals[1]
    p = antispoof.plan(g, cfg("hookscript:\n  strict: false\n"), NO_IPAM)
    assert p.refusals == () and len(p.warnings) == 2
    assert p.nics[0].addresses == (LL,)


def test_a_config_proxmox_firewall_cannot_read_is_in_the_plan():
    g = vm("net0: e1000e=BC:24:11:2C:69:EC,bridge=web,firewall=1\n", "ipconfig0: ip=10.100.0.5/24\n")
    p = antispoof.plan(g, cfg(), NO_IPAM)
    assert (p.unreadable.line, p.unreadable.key) == (1, "net0") and "e1000e" in p.unreadable.message
    assert p.refusals == () and len(p.nics) == 1          # the plan itself is as before
    other = vm("net0: e1000e=BC:24:11:2C:69:EC,bridge=vmbr0\n")   # not ours: known all the same
    assert antispoof.plan(other, cfg(), NO_IPAM).unreadable.key == "net0"
    assert antispoof.plan(vm(f"net0: virtio={MAC},bridge=web,firewall=1\n"), cfg(), NO_IPAM).unreadable is None


def _guard(nets, nft_nodes, fw_exists):
    p = antispoof.plan(vm(nets, "ipconfig0: ip=10.100.0.5/24\n"), cfg(), NO_IPAM)
    return antispoof.nft_guard(p, nft_nodes, "101.conf", "/etc/pve/firewall/101.fw", fw_exists)


E1000E_WEB = "net0: e1000e=BC:24:11:2C:69:EC,bridge=web,firewall=1\n"
E1000E_OTHER = "net0: e1000e=BC:24:11:2C:69:EC,bridge=vmbr0\n"


@pytest.mark.parametrize("nets,nft_nodes,fw_exists,action", [
    (f"net0: virtio={MAC},bridge=web,firewall=1\n", ["pve1"], True, None),     # readable: nothing to say
    (E1000E_WEB, [], False, antispoof.Nft.WARN),           # nftables off: written as before, with a warning
    (E1000E_WEB, [], True, antispoof.Nft.WARN),
    (E1000E_WEB, ["pve1"], False, antispoof.Nft.REFUSE),   # ours, nftables on: never create it
    (E1000E_WEB, ["pve1"], True, antispoof.Nft.REFUSE),    # ...nor change it
    (E1000E_OTHER, ["pve1"], True, antispoof.Nft.LEAVE),   # not ours, a .fw exists: left alone
    (E1000E_OTHER, ["pve1"], False, antispoof.Nft.WARN),   # not ours, nothing to write
    ("net31: virtio=BC:24:11:2C:69:EC,bridge=web,firewall=1\n", ["pve2"], False, antispoof.Nft.REFUSE),
])
def test_nft_guard(nets, nft_nodes, fw_exists, action):
    guard = _guard(nets, nft_nodes, fw_exists)
    assert (guard.action if guard else None) is action
    if guard:
        key = "net31" if "net31" in nets else "net0"
        assert f"guest 101 {key} (101.conf:1)" in guard.message
        assert all(n in guard.message for n in nft_nodes)
    if action is antispoof.Nft.REFUSE:
        assert ("not changed" if fw_exists else "not created") in guard.message
        assert "whole node" in guard.message


@pytest.mark.parametrize("text,on", [
    ("[OPTIONS]\nnftables: 1\n", True),
    ("[OPTIONS]\n\nNFTables:1 \n", True),              # pve-firewall: any case, spaces
    ("[OPTIONS]\nnftables: 1\nnftables: 0\n", False),    # the last one wins
    ("[OPTIONS]\nnftables: 0\n", False),
    ("[OPTIONS]\nnftables: true\n", False),             # pve-firewall reads only 0 or 1
    ("", False),
])
def test_nftables_on(text, on):
    assert antispoof.nftables_on(fwfile.parse(text)) is on


def _plan(extra=""):
    g = vm(f"net0: virtio={MAC},bridge=web,firewall=1\n", "ipconfig0: ip=10.100.0.5/24\n")
    c = cfg(extra)
    return antispoof.plan(g, c, NO_IPAM), c


def test_edit_empty_file_turns_firewall_on_and_keeps_inbound_open():
    p, c = _plan()
    text, changes = antispoof.edit_fw("", p, c.hookscript)
    assert text == (f"[OPTIONS]\n\nenable: 1\npolicy_in: ACCEPT\n{MARK}ipfilter: 1\n\n"
                    f"[IPSET ipfilter-net0] # managed by pve-microseg\n\n10.100.0.5\n{LL}\n\n")
    assert any("policy_in: ACCEPT" in str(ch) for ch in changes)


def test_edit_keeps_operator_policy_and_enabled_firewall():
    p, c = _plan()
    text, _ = antispoof.edit_fw("[OPTIONS]\n\nenable: 0\npolicy_in: DROP\n", p, c.hookscript)
    assert f"enable: 1\npolicy_in: DROP\n{MARK}ipfilter: 1\n" in text and "ACCEPT" not in text
    text, _ = antispoof.edit_fw("[OPTIONS]\n\nenable: 1\n", p, c.hookscript)
    assert "policy_in" not in text               # already on: inbound was DROP already


def test_policy_from_configuration():
    p, c = _plan("hookscript:\n  policy-in: DROP\n")
    text, _ = antispoof.edit_fw("", p, c.hookscript)
    assert "policy_in: DROP" in text


def test_operator_set_without_marker_is_kept():
    p, c = _plan()
    old = "[OPTIONS]\n\nenable: 1\nipfilter: 1\n\n[IPSET ipfilter-net0] # by hand\n\n10.100.0.77\n"
    text, changes = antispoof.edit_fw(old, p, c.hookscript)
    assert text == old
    assert "kept as is" in str(changes[0])


def test_edit_is_idempotent_and_removes_our_stale_sets():
    p, c = _plan()
    text, _ = antispoof.edit_fw("", p, c.hookscript)
    again, changes = antispoof.edit_fw(text, p, c.hookscript)
    assert again == text and changes == []
    stale = text + "[IPSET ipfilter-net3] # managed by pve-microseg\n\n10.9.9.9\n\n[IPSET keep]\n\n1.2.3.4\n"
    cleaned, changes = antispoof.edit_fw(stale, p, c.hookscript)
    assert cleaned == text + "[IPSET keep]\n\n1.2.3.4\n"
    assert "ipfilter-net3: removed" in str(changes[0])


# ---- review findings: option spellings, guest-wide ipfilter, guest-owned addresses

@pytest.mark.parametrize("options,was_on", [
    ("enable: 1\n", True),
    ("Enable: 1\n", True),           # pve-firewall: on; proxmox-firewall ignores the key
    ("enable: true\n", True),        # proxmox-firewall: on (inbound DROP); pve-firewall drops the line
    ("enable : 1\n", True),          # proxmox-firewall: on
    ("enable: 1\nENABLE: 0\n", True),  # proxmox-firewall: on; pve-firewall: the last one, off
    ("enable: 0\n", False),
    ("", False),
])
def test_firewall_state_as_either_parser_reads_it(options, was_on):
    p, c = _plan()
    text, changes = antispoof.edit_fw("[OPTIONS]\n\n" + options, p, c.hookscript)
    assert ("policy_in: ACCEPT" in text) is (not was_on)      # never opens a firewall that was on
    fw = fwfile.parse(text)
    assert [line for _, _, line, _ in fw.option_lines("enable")] == ["enable"]
    assert fw.option("enable") == "1"
    assert fwstrict.check(text, "guest") == []


def test_ipfilter_we_added_goes_with_our_last_set():
    p, c = _plan()
    text, _ = antispoof.edit_fw("[RULES]\n\nIN ACCEPT -p tcp -dport 22\n", p, c.hookscript)
    assert MARK + "ipfilter: 1\n" in text
    none = antispoof.GuestPlan(vmid=101, nics=(), refusals=(), warnings=())
    after, changes = antispoof.edit_fw(text, none, c.hookscript)
    assert "ipfilter" not in after and "managed by" not in after
    assert "enable: 1" in after and "IN ACCEPT -p tcp -dport 22" in after
    own = "[OPTIONS]\n\nipfilter: 1\n\n[IPSET ipfilter-net0] # managed by pve-microseg\n\n10.1.1.1\n"
    after, _ = antispoof.edit_fw(own, none, c.hookscript)
    assert after == "[OPTIONS]\n\nipfilter: 1\n\n"               # the operator's ipfilter: 1 stays


def test_every_firewall_nic_of_the_guest_gets_a_set():
    g = vm(f"net0: virtio={MAC},bridge=web,firewall=1\nnet1: virtio=BC:24:11:00:00:02,bridge=vmbr0,firewall=1\n"
           "net2: virtio=BC:24:11:00:00:03,bridge=vmbr0\n",
           "ipconfig0: ip=10.100.0.5/24\nipconfig1: ip=192.0.2.5/24\n")
    p = antispoof.plan(g, cfg(), NO_IPAM)
    assert [n.nic.key for n in p.nics] == ["net0", "net1"]          # net2 has no firewall: untouched
    assert p.nics[1].addresses == ("192.0.2.5", "fe80::be24:11ff:fe00:2")
    assert "applies to every NIC" in p.nics[1].why
    g = vm(f"net0: virtio={MAC},bridge=web,firewall=1\nnet1: virtio=BC:24:11:00:00:02,bridge=vmbr0,firewall=1\n",
           "ipconfig0: ip=10.100.0.5/24\n")
    p = antispoof.plan(g, cfg(), NO_IPAM)
    assert len(p.refusals) == 1 and "net1" in p.refusals[0] and "no address is known" in p.refusals[0]


def test_guest_without_managed_nic_is_not_touched():
    g = vm(f"net0: virtio={MAC},bridge=vmbr0,firewall=1\n", "ipconfig0: ip=192.0.2.5/24\n")
    assert antispoof.plan(g, cfg(), NO_IPAM).nics == ()


@pytest.mark.parametrize("ipconfig,ipam_owners,words", [
    ("ip=10.100.0.1/24", {}, "10.100.0.1 is a gateway address"),
    ("ip=10.200.0.5/24", {}, "outside the subnets of web"),
    ("ip=10.100.0.5/24", {"10.100.0.5": "102"}, "belongs to guest 102"),
])
def test_guest_owned_addresses_are_checked(ipconfig, ipam_owners, words):
    g = vm(f"net0: virtio={MAC},bridge=web,firewall=1\n", f"ipconfig0: {ipconfig},ip6=2001:db8:100::5/64\n")
    state = IpamState(path="x", by_guest={}, owners=ipam_owners)
    p = antispoof.plan(g, cfg(), state)
    assert any(words in r for r in p.refusals), p.refusals
    p = antispoof.plan(g, cfg("hookscript:\n  strict: false\n"), state)
    assert p.refusals == () and any(words in w for w in p.warnings)
    assert p.nics[0].addresses == ("2001:db8:100::5", LL)              # the bad one is left out


def test_gateway_mac_on_a_guest_nic_is_refused():
    g = vm("net0: virtio=02:00:00:00:01:01,bridge=web,firewall=1\n", "ipconfig0: ip=10.100.0.5/24\n")
    assert any("MAC address 02:00:00:00:01:01 of a gateway" in r for r in antispoof.plan(g, cfg(), NO_IPAM).refusals)


def test_datacenter_firewall_off_is_refused_under_strict():
    g = vm(f"net0: virtio={MAC},bridge=web,firewall=1\n", "ipconfig0: ip=10.100.0.5/24\n")
    p = antispoof.plan(g, cfg(), NO_IPAM, cluster_firewall_on=False)
    assert any("datacenter firewall is off" in r for r in p.refusals)


def test_crlf_file_is_refused():
    p, c = _plan()
    with pytest.raises(FirewallFileError) as e:
        antispoof.edit_fw("[OPTIONS]\r\n\r\nenable: 1\r\n", p, c.hookscript)
    assert "dos2unix" in str(e.value)


def test_comments_inside_our_set_are_kept_and_foreign_markers_are_not_ours():
    p, c = _plan()
    old = ("[OPTIONS]\n\nenable: 1\nipfilter: 1\n\n[IPSET ipfilter-net0] # managed by pve-microseg\n\n"
           "10.100.0.9\n\n# operator: keep this\n[RULES]\n\nIN ACCEPT -p tcp -dport 22\n")
    text, _ = antispoof.edit_fw(old, p, c.hookscript)
    assert "# operator: keep this\n[RULES]" in text and "10.100.0.9" not in text
    theirs = old.replace("# managed by pve-microseg", "# NOT managed by pve-microseg")
    assert antispoof.edit_fw(theirs, p, c.hookscript)[0] == theirs


# lines a real guest file may hold (all accepted by the strict parser)
_SECTIONS = st.lists(st.sampled_from([
    "[OPTIONS]\n\nenable: 1\n", "[OPTIONS]\n\nenable: 0\npolicy_in: DROP\n", "[OPTIONS]\n",
    "[OPTIONS]\nmacfilter: 0\nlog_level_in: info\n# a note\n", "[OPTIONS]",
    "[ALIASES]\n\nadmin 10.0.0.2 # the admin\n",
    "[IPSET admins] # who may ssh\n\ndc/admin\n10.9.9.9\n",
    "[IPSET ipfilter-net0] # managed by pve-microseg\n\n10.100.0.77\n",
    "[IPSET ipfilter-net3] # managed by pve-microseg\n\n10.100.0.78\n\n# keep me\n",
    "[IPSET ipfilter-net0] # by hand\n10.100.0.79\n",
    "[RULES]\n\nIN SSH(ACCEPT) -i net0\n|OUT ACCEPT -p tcp -dport 443 # disabled\n",
    "[RULES]", "# just a comment\n", "\n",
]), max_size=6).map("\n".join)


@settings(max_examples=400, deadline=None)
@given(_SECTIONS)
def test_accepted_file_stays_accepted_and_foreign_lines_stay(text):
    assume(fwstrict.check(text, "guest") == [])
    p, c = _plan()
    new, _ = antispoof.edit_fw(text, p, c.hookscript)
    assert fwstrict.check(new, "guest") == [], new
    ours = ("enable", "ipfilter", "policy_in")

    def foreign(t):
        out = []
        for s in fwfile.parse(t).sections:
            if s.managed:
                out += [l.strip() for l in s.lines if l.strip().startswith("#")]
                continue
            for line in ([s.header] if s.header else []) + s.lines:
                m = fwfile._OPTION.match(line) if s.kind == "options" else None
                if line.strip() and not (m and m.group("key").lower() in ours) \
                        and line.rstrip("\n") != antispoof.IPFILTER_MARK:
                    out.append(line.strip())
        return out
    after = foreign(new)
    if fwfile.parse(text).find("options") is None:
        after.remove("[OPTIONS]")                       # the section we had to create
    assert after == foreign(text)
    again, changes = antispoof.edit_fw(new, p, c.hookscript)
    assert again == new and not [ch for ch in changes if "kept as is" not in str(ch)]


@pytest.mark.parametrize("ipconfig,words", [
    ("ip=127.0.0.5/8", "127.0.0.5 is a loopback address"),
    ("ip=0.0.0.0/0", "0.0.0.0 is the unspecified address"),
    ("ip=224.0.0.5/4", "224.0.0.5 is a multicast address"),
    ("ip=255.255.255.255/32", "255.255.255.255 is the broadcast address"),
    ("ip=10.100.0.0/24", "10.100.0.0 is the network address of 10.100.0.0/24"),
    ("ip=10.100.0.255/24", "10.100.0.255 is the broadcast address of 10.100.0.0/24"),
    ("ip6=::ffff:10.100.0.5/128", "is an IPv4-mapped IPv6 address (write 10.100.0.5)"),
    ("ip6=::1/128", "::1 is a loopback address"),
    ("ip6=2001:db8:100::/64", "2001:db8:100:: is the subnet-router anycast address of 2001:db8:100::/64"),
])
def test_a_guest_config_address_no_host_can_have_is_left_out(ipconfig, words):
    """Issue 12: left out with a problem line, never a crash (also where the
    bridge has no subnets: for the address classes)."""
    g = vm(f"net0: virtio={MAC},bridge=web,firewall=1\n", f"ipconfig0: {ipconfig}\n")
    p = antispoof.plan(g, cfg("hookscript:\n  strict: false\n"), NO_IPAM)
    assert any(words in w for w in p.warnings), p.warnings
    assert p.nics[0].addresses == (LL,)
    if "address of" not in words:
        bare = cfg("hookscript:\n  strict: false\n")
        bare = Config(bridges=tuple(dataclasses.replace(b, subnets=()) for b in bare.bridges),
                      hookscript=bare.hookscript)
        p = antispoof.plan(g, bare, NO_IPAM)
        assert any(words in w for w in p.warnings) and p.nics[0].addresses == (LL,), p.warnings


def test_an_operator_listed_network_address_is_refused():
    g = vm(f"net0: virtio={MAC},bridge=web,firewall=1\n")
    p = antispoof.plan(g, cfg("guests:\n  101:\n    net0: [10.100.0.0, 10.100.0.7]\n"), NO_IPAM)
    assert any("10.100.0.0 is the network address of 10.100.0.0/24" in r for r in p.refusals), p.refusals
