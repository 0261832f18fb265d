"""antispoof: which addresses a NIC may use, and the .fw edit."""

import pytest

from pve_microseg import antispoof, config, guestconf, ipam
from pve_microseg.sdn import EMPTY

MAC = "BC:24:11:2C:69:EC"
LL = "fe80::be24:11ff:fe2c:69ec"
YAML = """\
bridges:
  web:
    gateway-mac: 02:00:00:00:01:01
    gateway-ip: 10.100.0.1
"""


def cfg(extra=""):
    doc = config.parse_document(YAML + extra, "microseg.yaml")
    bridges = tuple(config.resolve(s, EMPTY) for s in doc.bridges)
    return config.Config(bridges=bridges, hookscript=doc.hookscript, guests=doc.guests)


def vm(nets, ipconfig=""):
    return guestconf.parse(nets + ipconfig, 101, "qemu", "101.conf")


NO_IPAM = ipam.IpamState(path=None, by_guest={})


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
    state = ipam.IpamState(path="x", by_guest={("101", MAC.lower()): ("10.100.0.9", "2001:db8::9")})
    g = vm(f"net0: virtio={MAC},bridge=web,firewall=1\n", "ipconfig0: ip=10.100.0.5/24\n")
    nic = antispoof.plan(g, cfg(), state).nics[0]
    assert nic.addresses == ("10.100.0.5", "10.100.0.9", "2001:db8::9", LL)
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


def test_unknown_model_for_nftables_is_a_warning():
    g = vm("net0: e1000e=BC:24:11:2C:69:EC,bridge=web,firewall=1\n", "ipconfig0: ip=10.100.0.5/24\n")
    p = antispoof.plan(g, cfg(), NO_IPAM)
    assert any("e1000e" in w for w in p.warnings)


def _plan(extra=""):
    g = vm(f"net0: virtio={MAC},bridge=web,firewall=1\n", "ipconfig0: ip=10.100.0.5/24\n")
    c = cfg(extra)
    return antispoof.plan(g, c, NO_IPAM), c


def test_edit_empty_file_turns_firewall_on_and_keeps_inbound_open():
    p, c = _plan()
    text, changes = antispoof.edit_fw("", p, c.hookscript)
    assert text == ("[OPTIONS]\n\nenable: 1\npolicy_in: ACCEPT\nipfilter: 1\n\n"
                    f"[IPSET ipfilter-net0] # managed by pve-microseg\n\n10.100.0.5\n{LL}\n\n")
    assert any("policy_in: ACCEPT" in ch for ch in changes)


def test_edit_keeps_operator_policy_and_enabled_firewall():
    p, c = _plan()
    text, _ = antispoof.edit_fw("[OPTIONS]\n\nenable: 0\npolicy_in: DROP\n", p, c.hookscript)
    assert "enable: 1\npolicy_in: DROP\nipfilter: 1\n" in text and "ACCEPT" not in text
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
    assert "kept as is" in changes[0]


def test_edit_is_idempotent_and_removes_our_stale_sets():
    p, c = _plan()
    text, _ = antispoof.edit_fw("", p, c.hookscript)
    again, changes = antispoof.edit_fw(text, p, c.hookscript)
    assert again == text and changes == []
    stale = text + "[IPSET ipfilter-net3] # managed by pve-microseg\n\n10.9.9.9\n\n[IPSET keep]\n\n1.2.3.4\n"
    cleaned, changes = antispoof.edit_fw(stale, p, c.hookscript)
    assert cleaned == text + "[IPSET keep]\n\n1.2.3.4\n"
    assert "ipfilter-net3: removed" in changes[0]
