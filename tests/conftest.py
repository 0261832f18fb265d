"""Shared fixtures: a fake node (/etc/pve tree, sysfs, state dirs)."""

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(ROOT / "lib"))

from pve_microseg.edges.paths import Paths  # noqa: E402

RUNNING_CONFIG_RS = FIXTURES / "proxmox-ve-rs/proxmox-ve-config/tests/sdn/resources/running-config.json"
RUNNING_CONFIG_FW = FIXTURES / "proxmox-firewall/proxmox-firewall/tests/input/.running-config.json"


def in_ci():
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


# Under CI=true the property tests draw the same examples every run (a
# submission lands or not on its own merits, never on a lucky draw); outside
# CI they draw afresh, so a developer's runs keep exploring.
if in_ci():
    from hypothesis import settings as _hypothesis_settings
    _hypothesis_settings.register_profile("ci", derandomize=True, database=None)
    _hypothesis_settings.load_profile("ci")


def unavailable(reason):
    """Skip, or fail under CI=true: CI must have every tool and privilege a
    test needs, so a CI image that lacks one cannot pass silently."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing prerequisite is a failure)")
    pytest.skip(reason)


class FakeNode:
    """A test tree laid out like a Proxmox node, with Paths pointing into it."""

    def __init__(self, root):
        self.root = root
        self.env = {
            "PVE_MICROSEG_PVE_DIR": str(root / "etc/pve"),
            "PVE_MICROSEG_STATE_DIR": str(root / "var/lib/pve-microseg"),
            "PVE_MICROSEG_RUN_DIR": str(root / "run/pve-microseg"),
            "PVE_MICROSEG_NETWORK_DIR": str(root / "etc/network"),
            "PVE_MICROSEG_SYS_CLASS_NET": str(root / "sys/class/net"),
            "PVE_MICROSEG_DPKG_STATUS": str(root / "var/lib/dpkg/status"),
        }
        self.paths = Paths.from_env(self.env)
        (self.paths.pve_dir / "sdn").mkdir(parents=True)
        self.paths.sys_class_net.mkdir(parents=True)
        self.paths.dpkg_status.parent.mkdir(parents=True)
        shutil.copy(FIXTURES / "dpkg/status", self.paths.dpkg_status)
        self.mount_pmxcfs()
        conf = self.paths.ifupdown2_conf
        conf.parent.mkdir(parents=True)
        conf.write_text("# ifupdown2.conf\naddon_scripts_support=1\n")

    def mount_pmxcfs(self, mounted=True):
        marker = self.paths.pmxcfs_marker
        if mounted:
            marker.write_text("1\n")
        elif marker.exists():
            marker.unlink()

    def add_bridge(self, name):
        (self.paths.sys_class_net / name / "bridge").mkdir(parents=True)

    def add_interface(self, name):
        (self.paths.sys_class_net / name).mkdir(parents=True)

    def write_config(self, text):
        self.paths.config.write_text(text)

    def write_legacy(self, text):
        self.paths.legacy_config.write_text(text)

    def running_config(self, source=RUNNING_CONFIG_RS):
        shutil.copy(source, self.paths.sdn_running_config)


@pytest.fixture
def fake_node(tmp_path):
    return FakeNode(tmp_path)


class FakeNft:
    """Records transactions instead of talking to the kernel."""

    def __init__(self, fail=None, nd_target=False):
        self.transactions = []
        self.fail = fail
        self.nd_target = nd_target      # what knows_nd_target() answers (nftables >= 1.1)

    def knows_nd_target(self):
        return self.nd_target

    def __call__(self, dry_run=False):
        return self

    def run(self, transaction):
        if self.fail:
            from pve_microseg.model.errors import NftablesError
            from pve_microseg.edges.nft import _explain
            raise NftablesError(_explain(self.fail))
        self.transactions.append(transaction)


@pytest.fixture
def fake_nft():
    return FakeNft()
