"""onfailure: what a pre-start that cannot complete the sets does; the backup start."""

import pytest

from pve_microseg.edges import node
from pve_microseg.parse import guestconf
from pve_microseg.policy import onfailure
from pve_microseg.policy.onfailure import Failure
from conftest import unavailable

NET = "net0: virtio=BC:24:11:2C:69:EC,bridge=web\n"


def guest(extra, guest_type="qemu"):
    net = NET if guest_type == "qemu" else "net0: name=eth0,bridge=web,hwaddr=BC:24:11:2C:69:EC,type=veth\n"
    return guestconf.parse(net + extra, 101, guest_type, "101.conf")


@pytest.mark.parametrize("extra,guest_type,backup", [
    ("lock: backup\n", "qemu", True),                 # vzdump's lock_vm, before its paused start
    ("", "qemu", False),
    ("lock: migrate\n", "qemu", False),
    ("lock: snapshot\n", "qemu", False),
    ("lock: suspended\n", "qemu", False),             # resume from hibernation: an ordinary start
    ("[snap1]\nlock: backup\n", "qemu", False),       # a snapshot section does not count
    ("lock: backup\n", "lxc", False),                 # pve-container's vzdump never starts a stopped CT
])
def test_backup_start(extra, guest_type, backup):
    assert onfailure.backup_start(guest(extra, guest_type)) is backup


def test_an_unreadable_guest_is_not_a_backup_start():
    assert onfailure.backup_start(None) is False


@pytest.mark.parametrize("policy,backup,action", [
    ("fail-closed", False, Failure.REFUSE),
    ("fail-closed", True, Failure.HOLD),
    (None, False, Failure.REFUSE),                    # microseg.yaml unreadable: the default
    (None, True, Failure.HOLD),
    ("fail-open", False, Failure.START),
    ("fail-open", True, Failure.START),
])
def test_on_failure(policy, backup, action):
    assert onfailure.on_failure(policy, backup) is action


def test_set_link_down_clears_iff_up_through_sysfs(fake_node):
    dev = fake_node.paths.sys_class_net / "tap101i0"
    dev.mkdir()
    (dev / "flags").write_text("0x1003\n")
    assert node.set_link_down(fake_node.paths, "tap101i0") is True
    assert (dev / "flags").read_text() == "0x1002\n"
    assert node.set_link_down(fake_node.paths, "tap101i0") is False
    with pytest.raises(FileNotFoundError):
        node.set_link_down(fake_node.paths, "tap101i1")


def test_set_link_down_on_a_real_bridge_port(tmp_path):
    """On this machine's kernel, in a network namespace of its own: a tap in a
    bridge goes down (the bridge port is disabled), and the bridge's
    promiscuous mode does not become the tap's own (flags read back from
    sysfs include it)."""
    import os
    import shutil
    import subprocess
    if os.geteuid() != 0 or shutil.which("ip") is None:
        unavailable("needs root and iproute2")
    from pathlib import Path
    import pve_microseg
    ns = f"msegt{os.getpid()}"
    ip = ["ip", "-n", ns]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for cmd in (["tuntap", "add", "tap101i0", "mode", "tap"], ["link", "add", "br9", "type", "bridge"],
                    ["link", "set", "tap101i0", "master", "br9"], ["link", "set", "br9", "up"],
                    ["link", "set", "tap101i0", "up"]):
            subprocess.run(ip + cmd, check=True)
        code = ("import sys; sys.path.insert(0, sys.argv[1]); from pve_microseg.edges import node; "
                "from pve_microseg.edges.paths import Paths; "
                "print(node.set_link_down(Paths.from_env({}), 'tap101i0'))")
        lib = str(Path(pve_microseg.__file__).parents[1])
        r = subprocess.run(["ip", "netns", "exec", ns, "/usr/bin/python3", "-c", code, lib],
                           capture_output=True, text=True)
        assert r.stdout.strip() == "True", r.stderr
        subprocess.run(ip + ["link", "set", "tap101i0", "nomaster"], check=True)
        flags = subprocess.run(ip + ["-o", "link", "show", "tap101i0"], capture_output=True, text=True).stdout
        assert "UP" not in flags.split("<")[1].split(">")[0].split(",")
        assert "PROMISC" not in flags and "ALLMULTI" not in flags
    finally:
        subprocess.run(["ip", "netns", "del", ns])
