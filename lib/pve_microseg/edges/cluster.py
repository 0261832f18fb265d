"""Who and where in the cluster, as pmxcfs shows it on this node: the guests
(.vmlist) and nodes (.members, nodes/), and the storages a hookscript can
live on (storage.cfg); read and parsed, never written."""

from pathlib import Path

from ..model.errors import ConfigError, MicrosegError
from ..parse import storage as storage_parse, vmlist as vmlist_parse
from . import files, pveconf


def vmlist(paths):
    """{vmid: Guest} from /etc/pve/.vmlist."""
    text = files.read_text(paths.vmlist)
    return {} if text is None else vmlist_parse.parse_vmlist(text, paths.vmlist)


def guests(paths):
    """Every guest of /etc/pve/.vmlist, by VMID."""
    return sorted(vmlist(paths).values(), key=lambda g: g.vmid)


def guest_configs(paths, guests):
    """(Guest, GuestConfig or None, error or None) for each guest, read in bulk."""
    for g in guests:
        try:
            yield g, pveconf.guest_config(paths, g), None
        except MicrosegError as e:
            yield g, None, e


def _members_text(paths):
    """/etc/pve/.members, or "" when it cannot be read."""
    try:
        return files.read_text(paths.members, missing="")
    except ConfigError:
        return ""


def members(paths):
    """{node: ip} from /etc/pve/.members; {} when it cannot be read."""
    return vmlist_parse.parse_members(_members_text(paths))


def online(paths):
    """{node: online?} from /etc/pve/.members; {} when it cannot be read."""
    return vmlist_parse.parse_members_online(_members_text(paths))


def nodes(paths):
    """The nodes /etc/pve/nodes knows, sorted."""
    try:
        return sorted(e.name for e in paths.nodes_dir.iterdir() if e.is_dir())
    except OSError:
        return []


def storages(paths):
    """{storage id: Storage}, `local` included."""
    return storage_parse.parse(files.read_text(paths.storage_cfg, missing=""), paths.storage_cfg)


def snippet_path(paths, volume):
    """`local:snippets/x.sh` -> its file (Path) on this node; an absolute path as is."""
    if volume.startswith("/"):
        return Path(volume)
    return Path(storage_parse.snippet_path(storages(paths), volume, paths.storage_cfg))
