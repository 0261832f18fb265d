"""The cluster's guests and their configs, read in bulk (shared by flows)."""

from ..edges import pveconf
from ..model.errors import MicrosegError


def guests(paths):
    """Every guest of /etc/pve/.vmlist, by VMID."""
    return sorted(pveconf.vmlist(paths).values(), key=lambda g: g.vmid)


def guest_configs(paths, guests):
    """(Guest, GuestConfig or None, error or None) for each guest."""
    for g in guests:
        try:
            yield g, pveconf.guest_config(paths, g), None
        except MicrosegError as e:
            yield g, None, e
