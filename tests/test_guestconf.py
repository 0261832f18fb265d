"""guestconf: NICs, MACs, bridges and static addresses of VM and CT configs."""

import pytest

from conftest import FIXTURES
from pve_microseg.parse import guestconf
from pve_microseg.model.errors import GuestConfigError

FW_INPUT = FIXTURES / "proxmox-firewall/proxmox-firewall/tests/input"
CLOUDINIT = FIXTURES / "qemu-server/src/test/parse-config-input/cloudinit-snapshot.conf"


def test_container_fixture():
    g = guestconf.parse((FW_INPUT / "100.conf").read_text(), 100, "lxc", "100.conf")
    assert [n.index for n in g.nics] == [1, 2, 3]
    net1, net2, net3 = g.nics
    assert (net1.mac, net1.bridge, net1.firewall, net1.static) == (
        "bc:24:11:4d:b0:ff", "simple1", True, ("fd80::1234",))     # ip=dhcp contributes nothing
    assert net2.firewall is False
    assert net3.static == ("192.0.2.10", "fd80::1235")
    assert net3.static_from == "net3 ip/ip6"
    assert g.port(net3) == "veth100i3" and g.port(net3, fwbr=True) == "fwpr100p3"


def test_vm_without_nics():
    g = guestconf.parse((FW_INPUT / "101.conf").read_text(), 101, "qemu")
    assert g.nics == ()


def test_only_the_main_section_counts():
    # main: ipconfig0: ip6=dhcp; [special:cloudinit] and the snapshot differ
    g = guestconf.parse(CLOUDINIT.read_text(), 120, "qemu")
    (net0,) = g.nics
    assert (net0.model, net0.mac, net0.bridge, net0.firewall) == ("vmxnet3", "bc:24:11:2c:69:ec", "vnet0", True)
    assert net0.static == ()
    assert g.port(net0) == "tap120i0"


def test_cloud_init_static_addresses():
    text = ("net0: virtio=BC:24:11:2C:69:EC,bridge=web,firewall=1\n"
            "ipconfig0: ip=10.100.0.5/24,gw=10.100.0.1,ip6=2001:db8:100::5/64,gw6=2001:db8:100::1\n"
            "hookscript: local:snippets/x\n")
    g = guestconf.parse(text, 101, "qemu")
    assert g.nics[0].static == ("10.100.0.5", "2001:db8:100::5")
    assert g.nics[0].static_from == "ipconfig0"
    assert g.hookscript == "local:snippets/x"


def test_model_key_form():
    g = guestconf.parse("net0: model=e1000e,macaddr=BC:24:11:00:00:01,bridge=web\n", 101, "qemu")
    assert (g.nics[0].model, g.nics[0].mac, g.nics[0].firewall) == ("e1000e", "bc:24:11:00:00:01", False)


@pytest.mark.parametrize("text,line,key,words", [
    ("memory: 1\nnet0: virtio=zz:24:11:00:00:01,bridge=web\n", 2, "net0", "not a MAC"),
    ("net0: bridge=web\n", 1, "net0", "no NIC model"),
    ("net0: virtio=BC:24:11:00:00:01,bridge=web,firewall=yes\n", 1, "net0", "not 0 or 1"),
    ("net0: virtio=BC:24:11:00:00:01\nipconfig0: ip=10.0.0.300/24\n", 2, "ipconfig0", "10.0.0.300"),
    ("net0: virtio=BC:24:11:00:00:01,bridge=a,bridge=b\n", 1, "net0", "duplicate"),
])
def test_errors_name_file_line_and_key(text, line, key, words):
    with pytest.raises(GuestConfigError) as e:
        guestconf.parse(text, 101, "qemu", "/etc/pve/qemu-server/101.conf")
    assert (e.value.line, e.value.field) == (line, key)
    assert words in str(e.value) and "101.conf" in str(e.value)


def test_keys_proxmox_ignores_are_ignored():
    g = guestconf.parse("net32: virtio=BC:24:11:00:00:01\nnet1 : virtio=BC:24:11:00:00:02\n"
                        "Net2: virtio=BC:24:11:00:00:03\n", 101, "qemu", "101.conf")
    assert g.nics == ()
    assert "net32: ignored" in g.warnings[0]
