"""Debian version comparison, as dpkg does it (pure).

A version is [epoch:]upstream[-revision]; epochs compare as numbers, then
upstream and revision with dpkg's algorithm (deb-version(7)): alternately a
run of non-digits, compared character by character, where `~` sorts before
everything, even the end of the string, and letters before other
characters; then a run of digits, compared as a number.  So 1.2.0~rc1 <
1.2.0 < 1.2.0-1 < 1.2.0+b1 < 1.2.1~bpo12+1 < 1.2.1 < 1:0.1.
"""

_DIGITS = "0123456789"


def _order(c):
    """The weight of one non-digit character ('' for the end)."""
    if c == "~":
        return -1
    if not c:
        return 0
    if c.isascii() and c.isalpha():
        return ord(c)
    return ord(c) + 256


def _compare_part(a, b):
    """dpkg's verrevcmp: <0, 0 or >0."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and a[i] not in _DIGITS) or (j < len(b) and b[j] not in _DIGITS):
            ac = _order(a[i] if i < len(a) and a[i] not in _DIGITS else "")
            bc = _order(b[j] if j < len(b) and b[j] not in _DIGITS else "")
            if ac != bc:
                return ac - bc
            i, j = i + 1, j + 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        first_diff = 0
        while i < len(a) and a[i] in _DIGITS and j < len(b) and b[j] in _DIGITS:
            first_diff = first_diff or ord(a[i]) - ord(b[j])
            i, j = i + 1, j + 1
        if i < len(a) and a[i] in _DIGITS:
            return 1
        if j < len(b) and b[j] in _DIGITS:
            return -1
        if first_diff:
            return first_diff
    return 0


def split(version):
    """(epoch, upstream, revision); ValueError when it is no Debian version."""
    version = version.strip()
    epoch, colon, rest = version.partition(":")
    if not colon:
        epoch, rest = "0", version
    if not epoch.isdigit() or not rest[:1].isdigit():
        raise ValueError(f"not a Debian version: {version!r}")
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
    return int(epoch), upstream, revision


def compare(a, b):
    """-1, 0 or 1 as version a sorts before, with or after b (dpkg --compare-versions)."""
    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    result = (ea > eb) - (ea < eb) or _compare_part(ua, ub) or _compare_part(ra, rb)
    return (result > 0) - (result < 0)
