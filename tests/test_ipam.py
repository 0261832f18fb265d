"""ipam: guest addresses from the PVE IPAM state, both file locations."""

import pytest

from conftest import FIXTURES
from pve_microseg.edges import pveconf
from pve_microseg.parse import ipam
from pve_microseg.model.errors import ConfigError

IPAM_DB = FIXTURES / "proxmox-firewall/proxmox-firewall/tests/input/ipam.db"


def test_fixture_by_vmid_and_mac():
    state = ipam.parse(IPAM_DB.read_text(), "ipam.db")
    assert state.addresses(101, "bc:24:11:11:22:33") == ("10.101.1.100", "fd80::1000")
    assert state.addresses("101", "BC:24:11:11:22:33") == ("10.101.1.100", "fd80::1000")
    assert state.addresses(101, "bc:24:11:11:22:34") == ()
    assert state.addresses(999, "bc:24:11:11:22:33") == ()


def test_current_location_wins_over_legacy(fake_node):
    paths = fake_node.paths
    (paths.pve_dir / "priv").mkdir()
    paths.legacy_ipam_state.write_text(IPAM_DB.read_text())
    assert pveconf.ipam(paths).path == str(paths.legacy_ipam_state)
    paths.ipam_state.write_text('{"zones": {"z": {"subnets": {"10.0.0.0/24": {"ips": {'
                                '"10.0.0.7": {"vmid": "101", "mac": "BC:24:11:11:22:33"}}}}}}}')
    state = pveconf.ipam(paths)
    assert state.path == str(paths.ipam_state)
    assert state.addresses(101, "bc:24:11:11:22:33") == ("10.0.0.7",)


def test_missing_is_empty_and_broken_is_an_error(fake_node):
    assert pveconf.ipam(fake_node.paths).by_guest == {}
    fake_node.paths.ipam_state.write_text("{not json")
    with pytest.raises(ConfigError) as e:
        pveconf.ipam(fake_node.paths)
    assert "pve-ipam-state.json" in str(e.value)


def test_one_guest_only():
    state = ipam.parse(IPAM_DB.read_text(), "ipam.db", vmid=102)
    assert state.addresses(101, "bc:24:11:11:22:33") == ()
    state = ipam.parse(IPAM_DB.read_text(), "ipam.db", vmid=101)
    assert state.addresses(101, "bc:24:11:11:22:33") == ("10.101.1.100", "fd80::1000")


def test_ipv6_keys_and_vmids_in_any_spelling_are_found():
    """Issue 12: the owner check compared the address as written, so an IPv6
    key in upper case, with leading zeros or expanded was missed."""
    text = ('{"zones": {"z": {"subnets": {"2001:db8::/64": {"ips": {'
            '"2001:DB8:0000:0000:0000:0000:0000:0005": {"vmid": "102", "mac": "BC:24:11:00:00:02"},'
            '"2001:db8::0007": {"vmid": "0103", "mac": "BC:24:11:00:00:03"},'
            '"10.0.0.9": {"vmid": 104, "mac": "BC:24:11:00:00:04"}}}}}}}')
    state = ipam.parse(text, "pve-ipam-state.json")
    assert state.owner("2001:db8::5") == "102" and state.owner("2001:0DB8::5") == "102"
    assert state.owner("2001:db8::7") == "103" and state.owner("10.0.0.9") == "104"
    assert state.addresses(102, "bc:24:11:00:00:02") == ("2001:db8::5",)
    assert state.addresses(103, "bc:24:11:00:00:03") == ("2001:db8::7",)
    only = ipam.parse(text, "x", {103, 104})
    assert only.addresses(102, "bc:24:11:00:00:02") == () and only.addresses(104, "bc:24:11:00:00:04") == ("10.0.0.9",)
    assert only.owner("2001:db8::5") == "102"
