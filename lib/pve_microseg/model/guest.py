"""Guests as the cluster knows them: where they run, their NICs."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Guest:
    """One entry of /etc/pve/.vmlist."""

    vmid: int
    node: str
    type: str                   # 'qemu' or 'lxc'

    @property
    def api_path(self):
        return f"/nodes/{self.node}/{self.type}/{self.vmid}/config"


@dataclass(frozen=True)
class Nic:
    """A `net<N>` of a VM or container config."""

    index: int
    mac: str                  # lower case, colon separated
    bridge: str               # None if not on a bridge
    firewall: bool
    model: str = None         # VM NIC model; 'veth' for containers
    tag: int = None
    static: tuple = ()        # host addresses from the guest config (CT ip=/ip6=, VM ipconfig<N>)
    static_from: str = None   # where static came from, e.g. 'ipconfig0'

    @property
    def key(self):
        return f"net{self.index}"


@dataclass(frozen=True)
class GuestConfig:
    """The main section of `<vmid>.conf`, as far as pve-microseg uses it."""

    vmid: int
    type: str                 # 'qemu' or 'lxc'
    path: str
    nics: tuple               # Nic, by index
    hookscript: str = None
    warnings: tuple = ()
    lock: str = None          # the config lock (`lock: backup` while vzdump runs), None if unlocked
    name: str = None          # `name:` of a VM, `hostname:` of a container: the guest owner's text, unchecked
    text: str = field(default=None, repr=False, compare=False)   # the file as read (None: unknown)

    def port(self, nic, fwbr=False):
        """The device Proxmox plugs into the bridge for this NIC: tap<vmid>i<n>
        (qemu-server), veth<vmid>i<n> (pve-container), fwpr<vmid>p<n> when the
        NIC has a firewall bridge (pve-common PVE/Network.pm)."""
        if fwbr:
            return f"fwpr{self.vmid}p{nic.index}"
        return f"{'tap' if self.type == 'qemu' else 'veth'}{self.vmid}i{nic.index}"
