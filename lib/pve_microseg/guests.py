"""The cluster's guests as pmxcfs holds them: `.vmlist` and the guest configs (reads).

Read in bulk from the files every node already has locally, not one pvesh
call per guest (a pvesh call costs about a second).
"""

import json
from dataclasses import dataclass

from . import guestconf
from .errors import ConfigError, GuestConfigError


@dataclass(frozen=True)
class Guest:
    vmid: int
    node: str
    type: str                   # 'qemu' or 'lxc'

    @property
    def api_path(self):
        return f"/nodes/{self.node}/{self.type}/{self.vmid}/config"


def vmlist(paths):
    """{vmid: Guest} from /etc/pve/.vmlist."""
    path = paths.pve_dir / ".vmlist"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ConfigError(path, None, None, f"cannot read: {e}") from None
    out = {}
    for vmid, info in (data.get("ids") or {}).items():
        if vmid.isdigit() and isinstance(info, dict) and info.get("type") in ("qemu", "lxc"):
            out[int(vmid)] = Guest(int(vmid), info.get("node", ""), info["type"])
    return out


def config(paths, guest):
    """The GuestConfig of one guest, from its node's directory."""
    path = paths.guest_config(guest.node, guest.type, guest.vmid)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise GuestConfigError(path, None, None, f"cannot read: {e.strerror}") from None
    return guestconf.parse(text, guest.vmid, guest.type, path)
