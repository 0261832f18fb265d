"""Which proxmox-firewall a node has, and what it means for ipfilter.

Before 1.2.0 proxmox-firewall never filtered the IP part of ipfilter ("fix
#6336", proxmox/proxmox-firewall 9b7295a, first in 1.2.0): dpkg's version
order, dpkg's status file, and the decision built on them.
"""

import shutil
import subprocess

import pytest

from conftest import FIXTURES, unavailable
from pve_microseg.edges import node
from pve_microseg.model.errors import ConfigError
from pve_microseg.parse import dpkg
from pve_microseg.policy import debversion, protection

STATUS = (FIXTURES / "dpkg/status").read_text()

# (a, b, sign of a - b), each as dpkg --compare-versions orders them
PAIRS = [
    ("0.7.1", "1.2.0", -1),
    ("1.1.2", "1.2.0", -1),
    ("1.2.0", "1.2.0", 0),
    ("1.2.1", "1.2.0", 1),
    ("1.2.3", "1.2.0", 1),
    ("1.2.0~rc1", "1.2.0", -1),
    ("1.2.1~bpo12+1", "1.2.0", 1),
    ("1.2.1~bpo12+1", "1.2.1", -1),
    ("1.2.0-1", "1.2.0", 1),
    ("1.2.0+b1", "1.2.0-1", 1),
    ("1.10.0", "1.9.9", 1),
    ("1.02", "1.2", 0),
    ("1.2", "1.2.0", -1),
    ("1.2.0a", "1.2.0", 1),
    ("1.2.0a", "1.2.0+", -1),              # letters sort before other characters
    ("1.2.0~~", "1.2.0~", -1),
    ("1:0.1", "1.2.3", 1),
    ("0:1.2.0", "1.2.0", 0),
    ("1.1.2-1~pve8", "1.2.0", -1),
    ("2.0-1.1", "2.0-1", 1),               # the revision starts after the last hyphen
]


@pytest.mark.parametrize("a,b,sign", PAIRS)
def test_version_order(a, b, sign):
    assert debversion.compare(a, b) == sign
    assert debversion.compare(b, a) == -sign


def test_version_order_agrees_with_dpkg():
    if shutil.which("dpkg") is None:
        unavailable("dpkg is not installed")
    for a, b, sign in PAIRS:
        op = {-1: "lt", 0: "eq", 1: "gt"}[sign]
        assert subprocess.run(["dpkg", "--compare-versions", a, op, b]).returncode == 0, (a, op, b)


@pytest.mark.parametrize("text", ["unknown", "not installed", "unknown: /var/lib/dpkg/status: not found",
                                  "", "x:1.0", ":1.0", "a1.0"])
def test_what_is_no_version_says_so(text):
    with pytest.raises(ValueError):
        debversion.compare(text, "1.2.0")


def test_dpkg_status_installed_versions():
    assert dpkg.installed_version(STATUS, "proxmox-firewall") == "1.2.3"
    assert dpkg.installed_version(STATUS, "pve-firewall") == "6.0.4"
    assert dpkg.installed_version(STATUS, "nftables") == "1.1.3-1"          # the first paragraph
    assert dpkg.installed_version(STATUS, "ulogd2") is None                 # removed, configuration kept
    assert dpkg.installed_version(STATUS, "proxmox") is None                # only whole names
    assert dpkg.installed_version(STATUS, "proxmox-firewall-extra") is None
    assert dpkg.installed_version("", "proxmox-firewall") is None


@pytest.mark.parametrize("state,installed", [
    ("install ok installed", True), ("install ok unpacked", True), ("install ok half-configured", True),
    ("install ok triggers-pending", True), ("hold ok installed", True),
    ("deinstall ok config-files", False), ("purge ok not-installed", False), ("", False)])
def test_dpkg_status_states(state, installed):
    text = (f"Package: other\nStatus: install ok installed\nVersion: 9\n\n"
            f"Package: proxmox-firewall\nStatus: {state}\nVersion: 1.1.2\n")
    assert dpkg.installed_version(text, "proxmox-firewall") == ("1.1.2" if installed else None)


def test_dpkg_status_continuation_lines_are_not_fields():
    text = ("Package: other\nStatus: install ok installed\nVersion: 9\nDescription: x\n"
            " Package: proxmox-firewall\n Version: 0.1\n\n"
            "Package: proxmox-firewall\nStatus: install ok installed\nVersion: 0.7.1\n")
    assert dpkg.installed_version(text, "proxmox-firewall") == "0.7.1"
    assert dpkg.installed_version(text.split("\n\n")[0], "proxmox-firewall") is None


def test_node_reads_dpkg_status(fake_node):
    paths = fake_node.paths
    assert node.installed_version(paths, "proxmox-firewall") == "1.2.3"
    # a real node's file is several MiB, and a package may describe itself in Latin-1
    filler = "".join(f"Package: pkg{i}\nStatus: install ok installed\nVersion: 1.{i}\n"
                     f"Description: {'x' * 900}\n\n" for i in range(4000))
    paths.dpkg_status.write_bytes(filler.encode() + b"Package: old\nStatus: install ok installed\n"
                                  b"Version: 1\nDescription: caf\xe9\n\n"
                                  + STATUS.replace("Version: 1.2.3", "Version: 1.1.2").encode())
    assert paths.dpkg_status.stat().st_size > 3 * 1024 * 1024
    assert node.installed_version(paths, "proxmox-firewall") == "1.1.2"
    paths.dpkg_status.unlink()
    with pytest.raises(ConfigError, match="dpkg/status: not found"):
        node.installed_version(paths, "proxmox-firewall")


@pytest.mark.parametrize("installed,kind", [
    ("0.7.1", "old"), ("1.1.2", "old"), ("1.2.0~rc1", "old"), ("1.0.0", "old"),
    ("1.2.0", None), ("1.2.1~bpo12+1", None), ("1.2.3", None), ("2.0.0", None),
    ("not installed", "missing"), ("unknown", None), ("unknown: /var/lib/dpkg/status: not found", None)])
def test_what_the_installed_proxmox_firewall_means(installed, kind):
    found = protection.proxmox_firewall_problem(installed)
    assert (found and found[0]) == kind
    if kind == "old":
        msg = found[1]
        assert installed in msg and "older than 1.2.0" in msg and "spoofed source address" in msg
        assert "L2 rules" in msg and "upgrade proxmox-firewall to 1.2.0 or later" in msg
