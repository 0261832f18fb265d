"""Identifiers (VMIDs, NIC keys, guest ports, node and interface names):
validated once, in parse/names.py, whole and in ASCII, and canonical."""

import io
import json

import pytest

from pvesim import Cluster
from pve_microseg.model.errors import ConfigError
from pve_microseg.parse import fwfile, guestconf, microseg_yaml, names, vmlist

ARABIC_101 = "\u0661\u0660\u0661"           # "١٠١": int() and str.isdigit() take it as 101
MAC = "BC:24:11:2C:69:EC"


@pytest.mark.parametrize("text,vmid", [("100", 100), ("101", 101), ("999999999", 999999999), (4242, 4242)])
def test_a_vmid_as_proxmox_writes_it(text, vmid):
    assert names.vmid(text) == vmid and names.is_vmid(text)


@pytest.mark.parametrize("text", ["99", "1000000000", "0101", "101\n", " 101", "+101", "1_01", ARABIC_101,
                                  "\uff11\uff10\uff11", "", None, True, 99, "101.0"])
def test_anything_else_is_not_a_vmid(text):
    assert not names.is_vmid(text) and names.vmid_or_none(text) is None
    with pytest.raises(ValueError, match="is not a VMID"):
        names.vmid(text)


def test_a_vmid_with_leading_zeros_says_how_to_write_it():
    with pytest.raises(ValueError, match=r"'0101' is not a VMID .*\(write 101\)"):
        names.vmid("0101")


@pytest.mark.parametrize("key,parsed", [("net0", ("net", 0)), ("net31", ("net", 31)), ("ipconfig7", ("ipconfig", 7)),
                                        ("net32", None), ("net01", None), ("net0\n", None), ("net\u0661", None),
                                        ("Net0", None), ("net", None), ("net-1", None)])
def test_nic_keys(key, parsed):
    assert names.nic_key(key) == parsed


@pytest.mark.parametrize("port,owner", [("tap101i0", (101, 0)), ("veth200i31", (200, 31)), ("fwpr101p3", (101, 3)),
                                        ("tap0101i0", None), ("tap101i0\n", None), (f"tap{ARABIC_101}i0", None),
                                        ("tap101i32", None), ("tap101i01", None), ("tap99i0", None),
                                        ("fwbr101i0", None), ("vmbr0", None)])
def test_guest_port_names(port, owner):
    assert names.guest_port(port) == owner


def yaml_guests(text):
    return microseg_yaml.parse_document("guests:\n" + text, "microseg.yaml").guests


def test_guests_map_with_101_and_0101_is_an_error_naming_both():
    with pytest.raises(ConfigError) as e:
        yaml_guests("  101:\n    net0: [10.0.0.5]\n  0101:\n    net0: [10.0.0.6]\n")
    msg = str(e.value)
    assert msg.startswith("microseg.yaml:4: guests.0101:") and "write 101" in msg \
        and "guests.101 on line 2 is the same guest" in msg, msg


@pytest.mark.parametrize("key", [ARABIC_101, "'101\\n'", '"101\\n"', "1_01", "0x65", "99"])
def test_guests_map_keys_are_vmids_in_ascii(key):
    with pytest.raises(ConfigError, match=r"microseg.yaml:2: guests\..*is not a VMID"):
        yaml_guests(f"  {key}:\n    net0: [10.0.0.5]\n")


@pytest.mark.parametrize("key", ['"net0\\n"', "net01", "net32", "net\u0661"])
def test_guest_nic_keys_are_whole_and_ascii(key):
    with pytest.raises(ConfigError, match="unknown key"):
        yaml_guests(f"  101:\n    {key}: [10.0.0.5]\n")
    assert yaml_guests("  101:\n    net31: [10.0.0.5]\n")[101].addresses == {31: ("10.0.0.5",)}


def test_a_chained_hookscript_volume_is_matched_whole():
    with pytest.raises(ConfigError, match="neither an absolute path nor a snippets volume id"):
        microseg_yaml.parse_document('hookscript:\n  chain: "local:snippets/x.sh\\n"\n', "microseg.yaml")
    doc = microseg_yaml.parse_document("hookscript:\n  chain: local:snippets/x.sh\n", "microseg.yaml")
    assert doc.hookscript.chain == "local:snippets/x.sh"


@pytest.mark.parametrize("key", ["net01", f"net\u0661", "net32"])
def test_a_guest_config_key_proxmox_does_not_read_as_a_nic_is_none(key):
    """net01 or net١ are not net1 to qemu-server (its keys are exact, its
    files bytes): read as net1 they would replace the real net1."""
    text = (f"net1: virtio={MAC},bridge=vmbr0,firewall=1\n"
            f"{key}: virtio=BC:24:11:00:00:01,bridge=web,firewall=1\nipconfig1: ip=10.100.0.5/24\n")
    gc = guestconf.parse(text, 101, "qemu", "101.conf")
    assert [(n.key, n.bridge, n.mac) for n in gc.nics] == [("net1", "vmbr0", MAC.lower())]
    if key.isascii():
        assert any(f"{key}: ignored" in w for w in gc.warnings), gc.warnings


def test_a_tag_in_other_digits_is_no_tag():
    gc = guestconf.parse(f"net0: virtio={MAC},bridge=web,tag=\u0661\u0660\n", 101, "qemu")
    assert gc.nics[0].tag is None


def test_vmlist_keeps_only_vmids_and_node_names_as_proxmox_writes_them():
    text = json.dumps({"ids": {"101": {"node": "pve1", "type": "qemu"}, "0102": {"node": "pve1", "type": "qemu"},
                               ARABIC_101: {"node": "pve1", "type": "lxc"},
                               "103": {"node": "../../tmp", "type": "qemu"}, "104\n": {"node": "pve1", "type": "qemu"}}})
    assert list(vmlist.parse_vmlist(text)) == [101]


def test_ipfilter_set_names_are_matched_whole():
    """pve-firewall takes `ipfilter-net1` for net1, not `ipfilter-net01`."""
    fw = fwfile.parse("[IPSET ipfilter-net01]\n\n10.0.0.9\n\n[IPSET IPFILTER-NET2]\n\n10.0.0.8\n\n"
                      "[IPSET ipfilter-net32]\n\n10.0.0.7\n")
    assert list(fw.ipfilter_sets()) == [2]


def test_the_hookscript_takes_only_a_vmid_as_proxmox_writes_it(tmp_path):
    from pve_microseg.entry import hookscript
    c = Cluster(tmp_path)
    c.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"})
    for bad in (ARABIC_101, "0101", "101\n"):
        err = io.StringIO()
        assert hookscript.main([bad, "pre-start"], environ=c.env, out=io.StringIO(), err=err) == 2
        assert "usage:" in err.getvalue()
    assert not (c.pve / "firewall/101.fw").exists()


@pytest.mark.parametrize("vmid", [ARABIC_101, "0101", "1_01"])
def test_the_cli_takes_only_a_vmid_as_proxmox_writes_it(tmp_path, vmid, capsys):
    from pve_microseg.entry import cli
    c = Cluster(tmp_path)
    c.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"})
    assert cli.main(["guest", "sync", vmid], environ=c.env, out=io.StringIO()) == 2
    assert "is not a VMID" in capsys.readouterr().err


def test_members_keeps_only_node_names_and_addresses_as_proxmox_writes_them():
    """.members names ssh's known_hosts file and the host asked: no path, no option."""
    from pve_microseg.parse.vmlist import parse_members
    text = ('{"nodelist": {"pve1": {"ip": "192.0.2.11"}, "../../tmp/x": {"ip": "192.0.2.12"},'
            ' "pve2\\n": {"ip": "192.0.2.13"}, "pve3": {"ip": "-oProxyCommand=sh"}, "pve4": {}}}')
    assert parse_members(text) == {"pve1": "192.0.2.11", "pve3": None, "pve4": None}
