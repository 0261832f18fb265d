"""A Proxmox firewall `.fw` file, parsed losslessly and edited in place (pure).

pve-microseg owns only a few things in a guest's `/etc/pve/firewall/<vmid>.fw`:
the `[IPSET ipfilter-net<N>]` sections it marks with `# managed by
pve-microseg`, and the `enable`, `ipfilter` and (once) `policy_in` options.
Everything else -- rules, aliases, other sets, comments, blank lines, option
order, line endings -- is the operator's or the API's and must come back byte
for byte.  So the file is kept as its raw lines, split into sections at each
`[...]` header line, and `render()` joins them again: `render(parse(t)) == t`
for every text.

Section headers are recognised the lenient way (case-insensitive, as
pve-firewall reads them); whether the strict parser of proxmox-firewall
accepts the file is fwstrict's job.
"""

import re
from dataclasses import dataclass, field

from . import names

MARKER = "managed by pve-microseg"
_MANAGED_HEADER = re.compile(r"^\[IPSET ipfilter-net[0-9]+\] # " + re.escape(MARKER) + r"[ \t]*\n?$")
_HEADER = re.compile(r"^\s*\[\s*(?P<kind>[A-Za-z]+)(?:\s+(?P<name>[^\]\s]+))?\s*\]")
_OPTION = re.compile(r"^\s*(?P<key>[A-Za-z0-9_]+)\s*:(?P<value>.*?)\s*$")
_IPFILTER = re.compile(r"ipfilter-(net[0-9]+)", re.ASCII)     # pve-firewall: "ipfilter-$netid", exactly


@dataclass
class Section:
    """One section: its header line (None for lines before the first header)
    and its body lines, each with its own line ending."""

    kind: str                      # 'preamble', 'options', 'aliases', 'rules', 'ipset', 'group', other
    name: str = None               # ipset/group name as written
    header: str = None
    lines: list = field(default_factory=list)

    def text(self):
        return (self.header or "") + "".join(self.lines)

    @property
    def managed(self):
        """True for an ipset pve-microseg wrote (its header is exactly ours)."""
        return self.kind == "ipset" and bool(_MANAGED_HEADER.match(self.header or ""))


@dataclass
class FwFile:
    sections: list

    def render(self):
        return "".join(s.text() for s in self.sections)

    # ------------------------------------------------------------ reading

    def find(self, kind, name=None):
        """The first section of this kind (and name, compared without case,
        as pve-firewall lowercases set names), or None."""
        for s in self.sections:
            if s.kind == kind and (name is None or (s.name or "").lower() == name.lower()):
                return s
        return None

    def option_lines(self, key):
        """[(section, index, key as written, value)] of every [OPTIONS] line
        whose key is `key` in any case -- what pve-firewall reads (it lowercases
        keys); proxmox-firewall sees only the exact lowercase key."""
        out = []
        for section in self.sections:
            if section.kind != "options":
                continue
            for i, line in enumerate(section.lines):
                m = _OPTION.match(line)
                if m and m.group("key").lower() == key:
                    out.append((section, i, m.group("key"), m.group("value").strip()))
        return out

    def option(self, key):
        """The value of an [OPTIONS] key (last one wins, as in pve-firewall), or None."""
        lines = self.option_lines(key)
        return lines[-1][3] if lines else None

    def ipsets(self):
        return [s for s in self.sections if s.kind == "ipset"]

    def ipfilter_sets(self):
        """{nic index: Section} for every `ipfilter-net<N>` set in the file."""
        out = {}
        for s in self.ipsets():
            m = _IPFILTER.fullmatch((s.name or "").lower())
            index = names.nic_index(m.group(1)) if m else None
            if index is not None:
                out.setdefault(index, s)
        return out

    # ------------------------------------------------------------ editing

    def set_option(self, key, value):
        """Make `key: value` the one line for this key: the first line with the
        key (any case or spacing) is rewritten in place, keeping its line
        ending, and other lines with the same key are removed (both parsers
        would otherwise disagree about them); without one, the line is added
        after the last option of the first [OPTIONS] section, which is created
        at the top of the file if needed.  Returns True if the text changed."""
        lines = self.option_lines(key)
        if lines:
            section, i, _, _ = lines[0]
            old = section.lines[i]
            new = f"{key}: {value}" + (_ending(old) or "\n")
            section.lines[i] = new
            for dup_section, j, _, _ in reversed(lines[1:]):
                del dup_section.lines[j]
            return new != old or len(lines) > 1
        section = self.find("options")
        if section is None:
            section = Section("options", header="[OPTIONS]\n", lines=["\n", "\n"])
            self._insert(section, self._index_of_first_header())
        if not section.header.endswith("\n"):
            section.header += "\n"
        last = None
        for i, line in enumerate(section.lines):
            if _OPTION.match(line):
                last = i
        if last is None:            # skip the blank line(s) after the header, like the API
            last = 0 if section.lines and not section.lines[0].strip() else -1
        _ensure_newline(section.lines, last)
        section.lines.insert(last + 1, f"{key}: {value}\n")
        return True

    def remove_option(self, key):
        """Remove every line of this key; returns True if any was there."""
        lines = self.option_lines(key)
        for section, i, _, _ in reversed(lines):
            del section.lines[i]
        return bool(lines)

    def put_ipset(self, name, entries, comment=MARKER):
        """Write `[IPSET name] # comment` with these entries: replace the
        section of that name in place, or add it after the last set (before
        [RULES], else at the end).  Returns True if the text changed."""
        block = Section("ipset", name=name, header=f"[IPSET {name}] # {comment}\n",
                        lines=["\n"] + [f"{e}\n" for e in entries] + ["\n"])
        old = self.find("ipset", name)
        if old is not None:
            # comment lines in the old body are not entries: someone's notes, kept
            block.lines += [line for line in old.lines if line.lstrip().startswith("#")]
            _ensure_newline(block.lines, len(block.lines) - 1)
            i = self.sections.index(old)
            changed = old.text() != block.text()
            self.sections[i] = block
            return changed
        sets = self.ipsets()
        if sets:
            at = self.sections.index(sets[-1]) + 1
        else:
            rules = self.find("rules")
            at = self.sections.index(rules) if rules else len(self.sections)
        self._insert(block, at)
        return True

    def remove_section(self, section):
        """Remove a section; comment lines in its body (someone's notes) move
        to the end of the section before it."""
        i = self.sections.index(section)
        notes = [line for line in section.lines if line.lstrip().startswith("#")]
        del self.sections[i]
        if notes:
            if i == 0:
                self.sections.insert(0, Section("preamble"))
                i = 1
            prev = self.sections[i - 1]
            if prev.lines:
                _ensure_newline(prev.lines, len(prev.lines) - 1)
            elif prev.header is not None and not prev.header.endswith("\n"):
                prev.header += "\n"
            prev.lines += notes
            _ensure_newline(prev.lines, len(prev.lines) - 1)

    def _index_of_first_header(self):
        for i, s in enumerate(self.sections):
            if s.header is not None:
                return i
        return len(self.sections)

    def _insert(self, section, at):
        """Insert a section; the text before it gets a final newline if it
        lacks one (the only byte we ever add to what is not ours)."""
        if at > 0:
            prev = self.sections[at - 1]
            if prev.lines:
                _ensure_newline(prev.lines, len(prev.lines) - 1)
            elif prev.header is not None and not prev.header.endswith("\n"):
                prev.header += "\n"
        self.sections.insert(at, section)


def _ending(line):
    if line.endswith("\r\n"):
        return "\r\n"
    return "\n" if line.endswith("\n") else ""


def _ensure_newline(lines, i):
    if 0 <= i < len(lines) and not lines[i].endswith("\n"):
        lines[i] += "\n"


def _kind(header_match):
    kind = header_match.group("kind").lower()
    return kind if kind in ("options", "aliases", "rules", "ipset", "group") else "other:" + kind


def _lines(text):
    """Lines with their endings, split at LF only, as both firewall parsers do
    (str.splitlines would also split at \x1c-\x1e, \x85, U+2028, ...)."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def parse(text):
    """Text -> FwFile.  Never fails: every line lands in some section."""
    sections = [Section("preamble")]
    for line in _lines(text):
        m = _HEADER.match(line) if line.lstrip().startswith("[") else None
        if m:
            sections.append(Section(_kind(m), name=m.group("name"), header=line))
        else:
            sections[-1].lines.append(line)
    if not sections[0].lines:
        sections.pop(0)
    return FwFile(sections)
