"""Dataplane tier: real kernel under QEMU, real ifupdown2, real packets, on both
supported releases: Debian 12 (Proxmox VE 8: kernel 6.1, nftables 1.0.6,
Python 3.11) and Debian 13 (Proxmox VE 9: kernel 6.12, nftables 1.1,
Python 3.13), each with its own ifupdown2.

Mode "none" (no rules) must show every attack getting through: it proves each
check can fail.  Mode "microseg" installs pve-microseg's .deb in the guest and
lets ifupdown2 load the rules; every attack must be blocked and the gateway
path must keep working.  One guest boot per mode (~2 min under TCG).

Outside CI a missing qemu/kernel skips; under CI=true it fails, as does a
missing dist/pve-microseg_*_all.deb (`make deb`).
"""

import pytest

from .checks import MODES, matrix
from .guest import releases

CASES = [pytest.param(release, mode, check, id=f"{release}:{mode}:{check.name}")
         for release in releases() for mode in MODES for check in matrix(mode)]


@pytest.mark.parametrize("release,mode,check", CASES)
def test_dataplane(dataplane, release, mode, check):
    row = dataplane(release, mode).rows.get(check.name)
    assert row is not None, f"{check.name} was not run in the guest"
    assert row["expected"] == check.expected(mode, release)
    assert row["observed"] == row["expected"], (
        f"{check.description}: expected {row['expected']}, observed {row['observed']} ({row['detail']})"
        + (f" -- a guest could {check.impact}" if check.kind == "attack" and mode == "microseg" else ""))
