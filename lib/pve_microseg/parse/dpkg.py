"""dpkg's status database (/var/lib/dpkg/status): which version of a package is installed.

One paragraph per package, separated by blank lines, fields `Name: value`
with continuation lines starting with a space (deb822, dpkg(1)).  `Status`
is `<want> <flag> <state>`; a package whose state is `not-installed` or
`config-files` (removed, its configuration kept) is not installed; any
other state (installed, unpacked, half-configured, triggers-*) has its
files, so its `Version` is the one on the node.
"""

import re

NOT_INSTALLED_STATES = frozenset({"not-installed", "config-files"})


def _fields(paragraph):
    fields = {}
    for line in paragraph.splitlines():
        if line[:1] in (" ", "\t") or ":" not in line:
            continue
        name, value = line.split(":", 1)
        fields[name.strip().lower()] = value.strip()
    return fields


def installed_version(text, package):
    """The version of `package` that dpkg's status `text` says is installed,
    or None when it is not (not listed, or only its configuration left)."""
    for m in re.finditer(rf"^Package:[ \t]*{re.escape(package)}[ \t]*$", text, re.M | re.I):
        start = text.rfind("\n\n", 0, m.start())
        end = text.find("\n\n", m.end())
        fields = _fields(text[start + 1 if start >= 0 else 0:end if end >= 0 else len(text)])
        state = fields.get("status", "").split()
        if len(state) == 3 and state[2] not in NOT_INSTALLED_STATES and fields.get("version"):
            return fields["version"]
    return None
