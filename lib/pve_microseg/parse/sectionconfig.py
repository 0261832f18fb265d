"""Proxmox's SectionConfig format (vnets.cfg, subnets.cfg, storage.cfg; pure).

    <type>: <id>
            key value
            key value

A header `<type>: <id>` starts at column 0, properties are indented
`key value` lines, a section ends at the first empty line, `#` lines are
comments (pve-common src/PVE/SectionConfig.pm, parse_config).
"""

import re
from dataclasses import dataclass, field

from ..model.errors import ConfigError

_HEADER = re.compile(r"^(\S+):\s*(\S+)\s*$")


@dataclass
class Section:
    type: str
    id: str
    line: int
    props: dict = field(default_factory=dict)    # key -> value (the first line of a key wins)
    lines: dict = field(default_factory=dict)    # key -> its line number


def parse_section_config(text, path, error=ConfigError):
    """Text -> [Section]; `error` (a ConfigError class) names the file's kind."""
    sections = []
    current = None
    # lines end at LF only, as SectionConfig.pm splits them: str.splitlines would
    # also end one at CR, VT, FF, \x1c-\x1e, \x85, U+2028 and name a wrong line
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip()
        if not line.strip():
            current = None
            continue
        if line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            m = _HEADER.match(line)
            if not m:
                raise error(path, lineno, None, f"expected '<type>: <id>', got {line!r}")
            current = Section(m.group(1), m.group(2), lineno)
            sections.append(current)
            continue
        if current is None:
            raise error(path, lineno, None, "property outside of a section")
        key, _, value = line.strip().partition(" ")
        current.props.setdefault(key, value.strip())
        current.lines.setdefault(key, lineno)
    return sections
