"""The configuration pve-microseg decides on, as pmxcfs holds it on this node:
microseg.yaml and the legacy file, SDN, guest configs, the IPAM, firewall
files; read and parsed.  (Who is in the cluster and where: cluster.py.)

Every node has the whole of /etc/pve locally, so thousands of guests cost
file reads, not pvesh calls (a pvesh call costs about a second).  Each
function reads with edges/files.py (size cap, errors naming the file) and
parses with parse/; none of them writes anything.
"""

from ..model.config import Document
from ..model.errors import ClusterFsError, GuestConfigError, SdnConfigError
from ..model.ipam import EMPTY as NO_IPAM
from ..model.sdn import EMPTY as NO_SDN
from ..parse import fwfile, guestconf, ipam as ipam_parse, legacy as legacy_parse, sdn as sdn_parse
from ..parse.sectionconfig import parse_section_config
from ..policy import resolve
from . import files, pmxcfs, state


# ---------------------------------------------------------------- microseg.yaml

def document(paths):
    """(text, Document, parsed) of microseg.yaml: text None when there is no
    file; parsed False when the Document came from the cache of its text."""
    text = files.read_text(paths.config)
    if text is None:
        return None, Document(), False
    doc = state.cached_document(paths, text)
    if doc is not None:
        return text, doc, False
    from ..parse import microseg_yaml         # PyYAML: ~15 ms, only when the cache misses
    return text, microseg_yaml.parse_document(text, paths.config), True


def legacy(paths, missing=()):
    """The bridges of the article's L2-microsegmentation.conf (`missing` without one)."""
    text = files.read_text(paths.legacy_config)
    return legacy_parse.parse_legacy(text, paths.legacy_config) if text is not None else missing


def config(paths, sdn_config=None, doc=None):
    """Every managed bridge, resolved against SDN -> Config; ConfigError if invalid."""
    if doc is None:
        _, doc, _ = document(paths)
    return resolve.config(doc, legacy(paths), sdn(paths) if sdn_config is None else sdn_config)


# ---------------------------------------------------------------- SDN

def running_sdn(paths):
    """The SDN configuration last applied (.running-config), or None before the first apply."""
    text = files.read_text(paths.sdn_running_config, error=SdnConfigError)
    return None if text is None else sdn_parse.parse_running_config(text, paths.sdn_running_config)


def pending_vnets(paths):
    """The VNets of vnets.cfg (applied or not)."""
    text = files.read_text(paths.sdn_vnets, missing="", error=SdnConfigError)
    return {s.id for s in parse_section_config(text, paths.sdn_vnets, SdnConfigError) if s.type == "vnet"}


def sdn(paths):
    """The SDN configuration as this node applied it, or, before the first
    apply, as it will apply it (vnets.cfg, subnets.cfg, zones.cfg)."""
    running = running_sdn(paths)
    if running is not None:
        return running
    vnets_text = files.read_text(paths.sdn_vnets, error=SdnConfigError)
    subnets_text = files.read_text(paths.sdn_subnets, error=SdnConfigError)
    if vnets_text is None and subnets_text is None:
        return NO_SDN
    zones_text = files.read_text(paths.sdn_zones, missing="", error=SdnConfigError)
    return sdn_parse.parse_pending_config(vnets_text or "", subnets_text or "",
                                          paths.sdn_vnets, paths.sdn_subnets, zones_text, paths.sdn_zones)


# ---------------------------------------------------------------- guests

def guest_config(paths, guest, node=None):
    """The GuestConfig of a Guest, from its node's directory (or `node`'s)."""
    path = paths.guest_config(node or guest.node, guest.type, guest.vmid)
    text = files.read_text(path, error=GuestConfigError)
    if text is None:
        raise GuestConfigError(path, None, None, "cannot read: No such file or directory")
    return guestconf.parse(text, guest.vmid, guest.type, path)


def find_guest_config(paths, vmid, node):
    """The GuestConfig of `vmid` on `node`, VM or container; None if neither exists."""
    for guest_type in ("qemu", "lxc"):
        path = paths.guest_config(node, guest_type, vmid)
        text = files.read_text(path, error=GuestConfigError)
        if text is not None:
            return guestconf.parse(text, vmid, guest_type, path)
    return None


def ipam(paths, vmid=None):
    """The IPAM's guest addresses (current location first), or an empty state;
    with `vmid`, only that guest's entries are validated.

    priv/ipam.db is read only when sdn/pve-ipam-state.json does not exist, as
    PVE 8 does: its libpve-network-perl falls back to the legacy file until
    the first write of the new one (proxmox/pve-network
    src/PVE/Network/SDN/Ipams/PVEPlugin.pm@2e32df1, branch stable-bookworm,
    0.11.3).  PVE 9 dropped the fallback ("ipam: remove fallback code for
    ipam.db and mac cache", 3245a20, on master): a PVE 9 node whose cluster
    never wrote the new file would see an empty IPAM where pve-microseg
    still reads the old one (kept: a supported release, PVE 8, reads it)."""
    for path in (paths.ipam_state, paths.legacy_ipam_state):
        text = files.read_text(path)
        if text is not None:
            return ipam_parse.parse(text, path, vmid)
    return NO_IPAM


# ---------------------------------------------------------------- firewall files

def firewall(path):
    """A .fw file, parsed losslessly (empty when absent); ClusterFsError if unreadable."""
    return fwfile.parse(pmxcfs.read_file(path))


def firewall_or_empty(path):
    """A .fw file, parsed; empty when absent or unreadable (for reports)."""
    try:
        return firewall(path)
    except ClusterFsError:
        return fwfile.parse("")
