"""Values from a command line or the environment, checked once, here.

Each returns the canonical value or raises ValueError with a sentence that
names what was expected; the entry points turn that into their own usage
error.  (No argparse here: the hooks import this and must stay cheap.)
"""

import math

from ..parse import names


def vmid(text):
    """'101' -> 101; ValueError for anything but a VMID as Proxmox writes it
    (the one check is parse/names.py's)."""
    return names.vmid(text)


def seconds(text, most=86400.0):
    """A number of seconds: finite, above 0, at most `most`."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and 0 < value <= most):       # also refuses nan and inf
        raise ValueError(f"{text!r}: expected more than 0 and at most {most:g} seconds")
    return value


PICTURE_SUFFIXES = (".dot", ".gv", ".svg", ".png")


def picture(text):
    """A file name for `graph --output`, ending in one of PICTURE_SUFFIXES."""
    if not text or not text.lower().endswith(PICTURE_SUFFIXES) or text.endswith("/"):
        raise ValueError(f"{text!r}: expected a file name ending in {', '.join(PICTURE_SUFFIXES)}")
    return text


def port(text):
    """A TCP/UDP port: 1 to 65535."""
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and 0 < int(text) < 65536):
        raise ValueError(f"{text!r}: expected a port number from 1 to 65535")
    return int(text)


def textfile(text):
    """A file name for `metrics --textfile`: node_exporter's textfile
    collector reads only files ending in .prom."""
    if not text or not text.endswith(".prom") or text.endswith("/") or text.rsplit("/", 1)[-1] == ".prom":
        raise ValueError(f"{text!r}: expected a file name ending in .prom (node_exporter reads no other)")
    return text
