"""The grammar of a Proxmox firewall rule line, as proxmox-firewall reads it (pure).

    [|]TYPE ACTION [-option value]... [# comment]

TYPE is IN, OUT or FORWARD (any case), or `GROUP <name>` (case-sensitive);
ACTION is a verdict (ACCEPT, DROP, REJECT, any case) or `Macro(VERDICT)`;
options are `-name value` or `--name value`: -i/-iface, -source, -dest,
-p/-proto, -dport, -sport, -log, -icmp-type, each at most once.  Everything
after the first `#` is the comment.

This is the one reading of a rule line: policy/fwstrict.py checks the values
the way proxmox-firewall does, policy/fwlint.py reasons about what a rule
matches.  The lexical rules follow the Rust parser of proxmox-ve-config
(proxmox/proxmox-ve-rs proxmox-ve-config/src/firewall/parse.rs and
src/firewall/types/rule.rs @840d1ede9605c8dacb7bb1329da1ee1a642c0a4e),
re-implemented from their behaviour, not copied.
"""

import re
from dataclasses import dataclass, field

# Rust's str::trim/trim_start remove Unicode White_Space; Python's strip() also
# removes U+001C..U+001F, so the set is spelled out.
RUST_WS = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
           "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
# ...while tokens end at ASCII whitespace (u8::is_ascii_whitespace: no \x0b).
ASCII_WS = " \t\n\x0c\r"

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")          # parse::match_name
DIGITS = re.compile(r"[0-9]+")
VERDICTS = ("ACCEPT", "DROP", "REJECT")
DIRECTIONS = ("IN", "OUT", "FORWARD")

# option name as written -> its meaning
OPTIONS = {"p": "proto", "proto": "proto", "dport": "dport", "sport": "sport",
           "dest": "dest", "source": "source", "i": "iface", "iface": "iface",
           "log": "log", "icmp-type": "icmp-type"}


# --- lexical helpers (Rust semantics) -------------------------------------------------

def trim(s):
    return s.strip(RUST_WS)


def ltrim(s):
    return s.lstrip(RUST_WS)


def token(s):
    """(first run of non-ASCII-whitespace, left-trimmed rest) of an already
    left-trimmed string; ('', '') if there is none (match_non_whitespace)."""
    for i, ch in enumerate(s):
        if ch in ASCII_WS:
            return s[:i], ltrim(s[i:])
    return s, ""


def name_at_start(s):
    """(name, rest) for a leading `[A-Za-z][A-Za-z0-9_-]*`, or None."""
    m = NAME.match(s)
    return (m.group(), s[m.end():]) if m else None


def is_name(s):
    return NAME.fullmatch(s) is not None


_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def ascii_upper(s):
    """Upper-case ASCII letters only (Rust's eq_ignore_ascii_case): Python's upper()
    would also turn e.g. a dotless 'ı' into 'I'."""
    return s.translate(_UPPER)


def quote(s, limit=60):
    return repr(s if len(s) <= limit else s[:limit] + "...")


# --- the rule ---------------------------------------------------------------------------

class RuleSyntaxError(ValueError):
    """A rule line proxmox-firewall cannot read.  `caution`: only some
    versions reject it, or pve-microseg cannot vouch for it (conservative)."""

    def __init__(self, message, caution=False):
        super().__init__(message)
        self.caution = caution


@dataclass(frozen=True)
class FwRule:
    enabled: bool                  # False for a `|`-disabled rule
    direction: str                 # IN, OUT, FORWARD, or GROUP
    action: str                    # ACCEPT, DROP, REJECT; the group name for GROUP
    macro: str = None              # `SSH` of `SSH(ACCEPT)`
    options: dict = field(default_factory=dict)     # meaning (proto, dport, ...) -> value, in order
    comment: str = None

    def get(self, name):
        return self.options.get(name)


def split_comment(line):
    """(rule text, comment or None).  Everything after the first `#` is the
    comment; parsers before proxmox-ve-config 0.10 cut at the *last* `#` and
    keep a trailing lone `#`, so both shapes are refused (conservative)."""
    if "\r" in line:
        raise RuleSyntaxError("the rule contains a carriage return")
    if "#" not in line:
        return line, None
    if line.count("#") > 1:
        raise RuleSyntaxError("a '#' inside the rule comment makes older proxmox-firewall "
                              "versions reject the file", caution=True)
    body, _, comment = line.partition("#")
    if comment == "":
        raise RuleSyntaxError("a rule ending in an empty '#' comment is rejected by older "
                              "proxmox-firewall versions", caution=True)
    return trim(body), comment.strip()


def parse_options(text):
    """`-name value` pairs (one or two dashes) -> {meaning: value}."""
    options, seen = {}, set()
    text = ltrim(text)
    while text:
        if not text.startswith("-"):
            raise RuleSyntaxError(f"expected an option starting with '-' at {quote(text)}")
        text = text[1:]
        if text.startswith("-"):
            text = text[1:]
        found = name_at_start(text)
        if not found:
            raise RuleSyntaxError(f"expected an option name after '-' at {quote(text)}")
        name, text = found
        if text[:1] not in tuple(ASCII_WS):
            # Rust would take `-p=tcp` as proto '=tcp' (conservative: refuse).
            raise RuleSyntaxError(f"option -{name} must be followed by whitespace and a value", caution=True)
        value, text = token(ltrim(text))
        if not value:
            raise RuleSyntaxError(f"option -{name} has no value")
        if name not in OPTIONS:
            raise RuleSyntaxError(f"unknown rule option -{name} (known: -i, -source, -dest, -p, "
                                  "-dport, -sport, -log, -icmp-type)")
        key = OPTIONS[name]
        if name in seen or key in options:
            raise RuleSyntaxError(f"option -{name} is given twice")
        seen.add(name)
        options[key] = value
    return options


def _action(text):
    """`VERDICT` or `Macro(VERDICT)` -> (verdict, macro or None, rest)."""
    found = name_at_start(text)
    if not found:
        raise RuleSyntaxError(f"expected ACCEPT, DROP, REJECT or Macro(VERDICT) at {quote(text)}")
    word, rest = found
    macro = None
    if rest.startswith("("):
        macro, found = word, name_at_start(rest[1:])
        if not found:
            raise RuleSyntaxError(f"expected a verdict inside {macro}(...)")
        word, rest = found
        if not rest.startswith(")"):
            raise RuleSyntaxError(f"expected ')' after {macro}({word}")
        rest = rest[1:]
    if ascii_upper(word) not in VERDICTS:
        raise RuleSyntaxError(f"{quote(word)} is not a verdict (ACCEPT, DROP or REJECT)")
    return ascii_upper(word), macro, ltrim(rest)


def parse_rule(line):
    """One line of [RULES] or of a [group] section (already trimmed) -> FwRule."""
    text, comment = split_comment(line)
    enabled = not text.startswith("|")
    if not enabled:
        text = ltrim(text[1:])
    if text.startswith("GROUP"):            # case-sensitive, as in Rust
        found = name_at_start(text)
        if not found or ascii_upper(found[0]) != "GROUP":
            raise RuleSyntaxError("expected the keyword GROUP")
        found = name_at_start(trim(found[1]))
        if not found:
            raise RuleSyntaxError("expected a security group name after GROUP")
        return FwRule(enabled, "GROUP", found[0], options=parse_options(found[1]), comment=comment)
    found = name_at_start(text)
    if not found or ascii_upper(found[0]) not in DIRECTIONS:
        raise RuleSyntaxError(f"expected a rule type IN, OUT, FORWARD or GROUP at {quote(text)}")
    direction, rest = ascii_upper(found[0]), ltrim(found[1])
    verdict, macro, rest = _action(rest)
    return FwRule(enabled, direction, verdict, macro, parse_options(rest), comment)
