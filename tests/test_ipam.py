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
