"""The nftables edge's feature probe against the libnftables installed here.

Debian 12 ships nftables 1.0.6, which has no `icmpv6 taddr`; Debian 13
ships 1.1.3, which has. `make check` runs this on both (the host, and the
trixie chroot of `make unit-trixie`), so the probe is seen to answer both
ways on the real library.
"""

import os
import re
import shutil
import subprocess

import pytest

from pve_microseg.edges.nft import Nft
from conftest import unavailable


def _nft_version():
    if shutil.which("nft") is None:
        unavailable("nft is not installed")
    out = subprocess.run(["nft", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"v(\d+)\.(\d+)\.(\d+)", out)
    assert m, f"cannot read the version in {out!r}"
    return tuple(int(x) for x in m.groups())


def test_probe_answers_what_the_installed_nftables_can_load():
    if os.geteuid() != 0:
        unavailable("the probe needs CAP_NET_ADMIN (it checks a rule with the kernel, never commits)")
    try:
        import nftables  # noqa: F401
    except ImportError:
        unavailable("python3-nftables is not installed")
    version = _nft_version()
    if version == (1, 0, 6):
        assert Nft().knows_nd_target() is False
    elif version >= (1, 1, 0):
        assert Nft().knows_nd_target() is True
    else:
        unavailable(f"nftables {version}: neither Debian 12's nor Debian 13's")
    # the probe left nothing behind
    r = subprocess.run(["nft", "list", "table", "inet", "pve_microseg_probe"], capture_output=True, text=True)
    assert r.returncode != 0
