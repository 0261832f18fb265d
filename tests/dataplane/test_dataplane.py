"""Dataplane tier: real kernel (Debian 12 under QEMU), real ifupdown2, real packets.

Mode "none" (no rules) must show every attack getting through: it proves each
check can fail.  Mode "microseg" installs pve-microseg's .deb in the guest and
lets ifupdown2 load the rules; every attack must be blocked and the gateway
path must keep working.  One guest boot per mode (~2 min under TCG).

Outside CI a missing qemu/kernel skips; under CI=true it fails, as does a
missing dist/pve-microseg_*_all.deb (`make deb`).
"""

import pytest

from .checks import MODES, matrix

CASES = [pytest.param(mode, check, id=f"{mode}:{check.name}") for mode in MODES for check in matrix(mode)]


@pytest.mark.parametrize("mode,check", CASES)
def test_dataplane(dataplane, mode, check):
    row = dataplane(mode).rows.get(check.name)
    assert row is not None, f"{check.name} was not run in the guest"
    assert row["expected"] == check.expected(mode)
    assert row["observed"] == row["expected"], (
        f"{check.description}: expected {row['expected']}, observed {row['observed']} ({row['detail']})"
        + (f" -- a guest could {check.impact}" if check.kind == "attack" and mode == "microseg" else ""))
