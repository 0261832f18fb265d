"""Values from a command line or the environment, checked once, here.

Each returns the canonical value or raises ValueError with a sentence that
names what was expected; the entry points turn that into their own usage
error.  (No argparse here: the hooks import this and must stay cheap.)
"""

import math
import re

# pve-common's `pve-vmid` format: 100 to 999999999, ASCII digits only
# (pve_verify_vmid in proxmox/pve-common src/PVE/JSONSchema.pm); "١٠١" or
# "0101" would otherwise be read as 101 by int()
_VMID = re.compile(r"[1-9][0-9]{2,8}", re.ASCII)


def vmid(text):
    """'101' -> 101; ValueError for anything but a VMID as Proxmox writes it."""
    if not isinstance(text, str) or not _VMID.fullmatch(text):
        raise ValueError(f"{text!r} is not a VMID (100 to 999999999, digits 0-9 only, "
                         "no leading zero)")
    return int(text)


def seconds(text, most=86400.0):
    """A number of seconds: finite, above 0, at most `most`."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and 0 < value <= most):       # also refuses nan and inf
        raise ValueError(f"{text!r}: expected more than 0 and at most {most:g} seconds")
    return value
