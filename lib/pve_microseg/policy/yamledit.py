"""Edit /etc/pve/microseg.yaml in place, keeping the operator's comments and layout (pure).

PyYAML cannot write a file back with its comments, so edits are textual:
the file's parser events are read into a tree with line marks (aliases
stay where they are written), the entry to change is located by its lines,
and only those lines are replaced, removed or inserted.  Everything else
comes back byte for byte.  Entries we write use two-space indentation (or
the indentation of their siblings) and the file's own line breaks.

    set_entry(text, ("bridges", "web"), {"gateway-mac": "..", ...})   add or replace
    remove_entry(text, ("bridges", "web"))                             remove
    set_entry(text, ("guests", "101"), {"chain": "local:snippets/x"}, merge=True)
    inverse(old, new, current, ("guests", "101"))                      take an edit back

With merge=True only the given keys of an existing entry are replaced or
added; its other lines (comments, block lists) stay.  The result is parsed
again by the caller before it is written.

Every value we write reads back, with yaml.safe_load and with
parse/microseg_yaml.py, as exactly the string meant: plain only when it is
made of a few safe characters and YAML resolves it to a string (`yes`,
`on`, `~`, `1e3`, `12:34:56` would be retyped), else single-quoted, else
(line breaks, control characters) double-quoted with escapes.

Aliases and anchors: an edit never goes through an alias (`web: *base`),
never changes a node an alias elsewhere refers to (the anchor's owner and
the alias would both change), never removes an anchor still referred to,
and never edits a mapping with a merge key (`<<: *base`, which
microseg_yaml.py does not read either).  Such an edit is refused with a
ConfigError naming the line and the field: expanding the alias in place
would rewrite text that is the operator's and undo the sharing the
operator chose without saying so.
"""

import re
from dataclasses import dataclass, field

import yaml

from ..model.errors import ConfigError
from ..parse.yamlnodes import events

_BREAK = re.compile(r"(\r\n|[\r\n\x85\u2028\u2029])")      # the line breaks PyYAML counts
_BREAK_CHARS = "\r\n\x85\u2028\u2029"


def _lines(text):
    parts = _BREAK.split(text)
    out = [parts[i] + parts[i + 1] for i in range(0, len(parts) - 1, 2)]
    return out + ([parts[-1]] if parts[-1] else [])


def _newline(lines):
    """The file's own line break (that of its first line), for the lines we write."""
    for line in lines:
        m = _BREAK.search(line)
        if m:
            return m.group(0)
    return "\n"


# -- values -----------------------------------------------------------------

class _Raw(str):
    """A value's source text, written back as it is."""


@dataclass(frozen=True)
class AliasRef:
    """An alias (`*name`) as a field's value."""
    name: str


_PLAIN = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./:+@=-]*")
_RESOLVER = yaml.resolver.Resolver()
_STR = "tag:yaml.org,2002:str"


def _plain_ok(text):
    return (_PLAIN.fullmatch(text) is not None and not text.endswith(":")
            and text not in ("y", "Y", "n", "N")          # YAML 1.1 booleans PyYAML happens not to resolve
            and _RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) == _STR)


def _single_ok(ch):
    o = ord(ch)
    # printable, and not a line break (U+2028/2029 are breaks to YAML: folded in quotes)
    return 0x20 <= o <= 0x7E or (0xA0 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD or o >= 0x10000) \
        and o != 0xFEFF and ch not in _BREAK_CHARS


def _escape(ch):
    o = ord(ch)
    if ch in '\\"':
        return "\\" + ch
    if 0x20 <= o <= 0x7E:
        return ch
    if o <= 0xFF:
        return f"\\x{o:02X}"
    if o <= 0xFFFF:
        return f"\\u{o:04X}"
    return f"\\U{o:08X}"


def _quoted(text):
    if all(_single_ok(c) for c in text):
        return "'" + text.replace("'", "''") + "'"
    return '"' + "".join(_escape(c) for c in text) + '"'


def _scalar(text):
    """A string as a YAML scalar that reads back as exactly this string."""
    return text if _plain_ok(text) else _quoted(text)


def _key(text):
    """A mapping key: plain names as they are (`101:` is read as the text
    101 by microseg_yaml.py), anything else quoted."""
    text = str(text)
    return text if _PLAIN.fullmatch(text) and not text.endswith(":") else _quoted(text)


def _render_value(value):
    if isinstance(value, _Raw):
        return str(value)
    if isinstance(value, AliasRef):
        return f"*{value.name}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)}: {_render_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_render_value(v) for v in value) + "]"
    return _scalar(str(value))


def _render_entry(key, fields, indent, nl):
    pad = " " * indent
    lines = [f"{pad}{_key(key)}:{nl}"]
    for k, v in fields.items():
        lines.append(f"{pad}  {_key(k)}: {_render_value(v)}{nl}")
    return lines


# -- the file as a tree, aliases where they are written ----------------------

@dataclass(eq=False)
class _Node:
    kind: str                       # scalar, alias, map, seq
    start: object                   # PyYAML marks (0-based line, column)
    end: object
    anchor: str = None              # &name defined on this node
    target: "_Node" = None          # an alias: the node it refers to
    value: str = None               # a scalar's text
    plain: bool = False             # a plain (unquoted, untagged-style) scalar
    flow: bool = False
    items: list = field(default_factory=list)          # a map: key, value, key, value...
    parent: "_Node" = None
    users: list = field(default_factory=list)          # the aliases that refer to this node

    @property
    def line(self):
        return self.start.line + 1

    def pairs(self):
        return list(zip(self.items[0::2], self.items[1::2]))


_KINDS = {yaml.ScalarEvent: "scalar", yaml.AliasEvent: "alias",
          yaml.MappingStartEvent: "map", yaml.SequenceStartEvent: "seq"}


def _tree(text, path):
    root, stack, anchors = None, [], {}
    for ev in events(text, path, problem="not valid YAML, not edited"):
        kind = _KINDS.get(type(ev))
        if kind is None:
            if isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                stack.pop().end = ev.end_mark
            continue
        node = _Node(kind, ev.start_mark, ev.end_mark)
        if kind == "alias":
            node.target = anchors[ev.anchor]
            node.target.users.append(node)
        elif ev.anchor is not None:
            node.anchor = ev.anchor
            anchors[ev.anchor] = node
        if kind == "scalar":
            node.value, node.plain = ev.value, ev.style in (None, "")
        elif kind != "alias":
            node.flow = bool(ev.flow_style)
        if stack:
            node.parent = stack[-1]
            stack[-1].items.append(node)
        else:
            root = node
        if kind in ("map", "seq"):
            stack.append(node)
    return root


def _walk(root):
    todo = [root] if root is not None else []
    while todo:
        node = todo.pop()
        yield node
        todo.extend(node.items)


def _is_null(node):
    return node.kind == "scalar" and node.plain and node.value in ("", "~", "null", "Null", "NULL")


def _child(mapping, key):
    if mapping is None or mapping.kind != "map":
        return None
    for k, v in mapping.pairs():
        if k.kind == "scalar" and k.value == key:
            return k, v
    return None


def _name(node):
    """The key path of a node, for messages (bridges.web)."""
    parts = []
    while node.parent is not None:
        parent = node.parent
        if parent.kind == "map":
            key = next(k for k, v in parent.pairs() if node is v or node is k)
            parts.append("." + (key.value if key.kind == "scalar" else "?"))
        else:
            parts.append(f"[{next(i for i, n in enumerate(parent.items) if n is node)}]")
        node = parent
    return "".join(reversed(parts)).lstrip(".") or "the file"


def _plain_value(node):
    """A node's content: a string, a list, a dict, or AliasRef."""
    if node.kind == "alias":
        return AliasRef(node.target.anchor)
    if node.kind == "scalar":
        return node.value
    if node.kind == "seq":
        return [_plain_value(n) for n in node.items]
    return {(k.value if k.kind == "scalar" else repr(_plain_value(k))): _plain_value(v) for k, v in node.pairs()}


# -- refusals ----------------------------------------------------------------

def _refuse_alias(knode, vnode, path, field_name):
    if vnode.kind == "alias":
        t = vnode.target
        raise ConfigError(path, knode.line, field_name,
                          f"is an alias of &{t.anchor} ({_name(t)}, line {t.line}); pve-microseg does not edit "
                          f"through an alias, which would change {_name(t)} too: write {field_name} out in "
                          "full, then run again")


def _refuse_shared(node, path, field_name):
    """An edit inside `node` would also change what an alias refers to, or
    meet a merge key: refused."""
    n = node
    while n is not None:
        if n.users:
            u = n.users[0]
            raise ConfigError(path, n.line, field_name,
                              ("" if n is node else f"its {_name(n)} ") +
                              f"is shared through the YAML anchor &{n.anchor}: {_name(u)} (line "
                              f"{u.line}) refers to it, so an edit would change both; write them out "
                              "separately, then run again")
        n = n.parent
    if node.kind == "map":
        for k, _ in node.pairs():
            if k.kind == "scalar" and k.plain and k.value == "<<":
                raise ConfigError(path, k.line, field_name,
                                  "uses a YAML merge key (<<), which pve-microseg neither reads nor edits: "
                                  "write the fields out, then run again")


def _refuse_removal(root, start, end, path, field_name):
    """Lines [start, end) may go only if no anchor they define is referred to from elsewhere."""
    for n in _walk(root):
        if n.users and start <= n.start.line < end:
            outside = [u for u in n.users if not start <= u.start.line < end]
            if outside:
                raise ConfigError(path, n.line, field_name,
                                  f"defines the YAML anchor &{n.anchor} that {_name(outside[0])} (line "
                                  f"{outside[0].line}) refers to; change that by hand first")


# -- lines -------------------------------------------------------------------

def _last_line(node):
    """The last line (0-based) holding any of this node's text."""
    if node.kind in ("scalar", "alias") or node.flow:
        m = node.end
        return m.line if m.column > 0 else m.line - 1
    return max([node.start.line] + [_last_line(c) for c in node.items])


def _entry_lines(lines, knode, vnode):
    """Line range [start, end) of a `key: value` entry; blank and comment
    lines after it belong to whatever follows."""
    start = knode.start.line
    end = max(_last_line(vnode), start) + 1
    while end - 1 > start and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1
    return start, end


def _comment_after(line, vnode):
    """` # ...` after a one-line value (kept when the value changes)."""
    rest = line[vnode.end.column:].rstrip(_BREAK_CHARS)
    return rest if rest.strip().startswith("#") else ""


def _source(lines, node):
    """A one-line node's source text, else None."""
    if node.start.line != node.end.line:
        return None
    return lines[node.start.line][node.start.column:node.end.column]


def _existing_fields(lines, vnode, path, field_name):
    """The fields of an entry that is not a block mapping, their values as written."""
    if _is_null(vnode):
        return {}
    if vnode.kind != "map":
        raise ConfigError(path, vnode.line, field_name, "not a mapping; edit it by hand")
    out = {}
    for k, v in vnode.pairs():
        source = _source(lines, v)
        out[k.value] = _Raw(source) if source is not None else _plain_value(v)
    return out


def _prepare(text, path):
    lines = _lines(text)
    nl = _newline(lines)
    if lines and lines[-1][-1] not in _BREAK_CHARS:
        lines[-1] += nl
    root = _tree(text, path)
    if root is not None and root.kind == "scalar" and root.plain and root.value == "":
        root = None
    if root is not None and root.kind != "map":
        raise ConfigError(path, root.line, None, "the file is not a mapping; not edited")
    return lines, nl, root


# -- edits -------------------------------------------------------------------

def set_entry(text, where, fields, merge=False, path="microseg.yaml"):
    """Add or replace `<section>: <key>: {fields}`; with merge, keep the
    entry's other fields.  Returns the new text."""
    section, key = where
    lines, nl, root = _prepare(text, path)
    found = _child(root, section)
    if found is None:
        if root is not None:
            _refuse_shared(root, path, section)
        if lines and lines[-1].strip():
            lines.append(nl)
        return "".join(lines + [f"{_key(section)}:{nl}"] + _render_entry(key, fields, 2, nl))
    skey, svalue = found
    fname = f"{section}.{key}"
    _refuse_alias(skey, svalue, path, section)
    if svalue.kind != "map" or svalue.flow:
        if _is_null(svalue):
            start, end = _entry_lines(lines, skey, svalue)
            _refuse_removal(root, start, end, path, section)
            if svalue.value != "":                          # `guests: ~`
                lines[start:end] = [f"{' ' * skey.start.column}{_key(section)}:{nl}"]
                end = start + 1
            lines[end:end] = _render_entry(key, fields, skey.start.column + 2, nl)
            return "".join(lines)
        raise ConfigError(path, skey.line, section, "not a block mapping; edit it by hand")
    _refuse_shared(svalue, path, fname)
    entry = _child(svalue, key)
    indent = svalue.items[0].start.column
    if entry is None:
        _, end = _entry_lines(lines, *svalue.pairs()[-1])
        lines[end:end] = _render_entry(key, fields, indent, nl)
        return "".join(lines)
    knode, vnode = entry
    if merge:
        _refuse_alias(knode, vnode, path, fname)
        if vnode.kind == "map" and not vnode.flow:
            _refuse_shared(vnode, path, fname)
            for k, v in fields.items():
                text = _set_one_key(text, where, k, v, path)
            return text
        fields = dict(_existing_fields(lines, vnode, path, fname), **fields)
    start, end = _entry_lines(lines, knode, vnode)
    _refuse_removal(root, start, end, path, fname)
    new = _render_entry(key, fields, knode.start.column, nl)
    if end - start == 1:                                    # `101: {...}   # comment`: the comment stays
        new[0] = new[0][:-len(nl)] + _comment_after(lines[start], vnode) + nl
    lines[start:end] = new
    return "".join(lines)


def _block_entry(root, where, path):
    """(knode, vnode) of an entry that is a block mapping, after the refusals."""
    section, name = where
    skey, svalue = _child(root, section)
    _refuse_alias(skey, svalue, path, section)
    knode, vnode = _child(svalue, name)
    _refuse_alias(knode, vnode, path, f"{section}.{name}")
    _refuse_shared(vnode, path, f"{section}.{name}")
    return knode, vnode


def _set_one_key(text, where, key, value, path, lines_of_value=None):
    """Replace or add one key of a block-mapping entry; its other lines stay
    as they are.  `lines_of_value`: the whole `key: value` lines to put
    instead of rendering `value`."""
    lines, nl, root = _prepare(text, path)
    _, vnode = _block_entry(root, where, path)
    indent = vnode.items[0].start.column
    child = _child(vnode, key)
    new = lines_of_value or [f"{' ' * indent}{_key(key)}: {_render_value(value)}{nl}"]
    if child is None:
        _, end = _entry_lines(lines, *vnode.pairs()[-1])
        lines[end:end] = new
    else:
        start, end = _entry_lines(lines, *child)
        _refuse_removal(root, start, end, path, ".".join((*where, key)))
        if lines_of_value is None and end - start == 1:
            eol = lines[start][len(lines[start].rstrip(_BREAK_CHARS)):] or nl
            new = [new[0][:-len(nl)] + _comment_after(lines[start], child[1]) + eol]
        lines[start:end] = new
    return "".join(lines)


def _remove(text, keys, path):
    """Remove the entry at this key path (nothing to do if absent)."""
    lines, nl, root = _prepare(text, path)
    node, found, parent, done = root, None, None, []
    for key in keys:
        found = _child(node, key)
        if found is None:
            return text
        if len(done) < len(keys) - 1:
            _refuse_alias(*found, path, ".".join((*done, key)))
        parent, node = node, found[1]
        done.append(key)
    fname = ".".join(keys)
    _refuse_shared(parent, path, fname)
    if parent.flow:
        if len(keys) != 3:
            raise ConfigError(path, parent.line, ".".join(keys[:-1]), "not a block mapping; edit it by hand")
        rest = _existing_fields(lines, parent, path, ".".join(keys[:2]))
        del rest[keys[-1]]
        return set_entry(text, keys[:2], rest, path=path)
    start, end = _entry_lines(lines, *found)
    _refuse_removal(root, start, end, path, fname)
    del lines[start:end]
    return "".join(lines)


def remove_entry(text, where, path="microseg.yaml"):
    """Remove `<section>: <key>` (nothing to do if absent).  Returns the new text."""
    return _remove(text, tuple(where), path)


def remove_key(text, where, key, path="microseg.yaml"):
    """Remove one key of a mapping entry (nothing to do if absent)."""
    return _remove(text, (*where, key), path)


# -- taking an edit back -----------------------------------------------------

@dataclass(frozen=True)
class Field:
    """One `key: value` of an entry as a file has it."""
    value: object                   # _plain_value: what it means
    lines: tuple = None             # its lines verbatim (None in a flow mapping)
    column: int = None
    source: str = None              # a one-line value's text


def fields_of(text, where, path="microseg.yaml"):
    """{key: Field} of `<section>: <key>`; None if there is no such entry."""
    lines, _, root = _prepare(text, path)
    section, name = where
    found = _child(root, section)
    if found is None or _child(found[1], name) is None:
        return None
    _refuse_alias(*found, path, section)
    knode, vnode = _child(found[1], name)
    _refuse_alias(knode, vnode, path, f"{section}.{name}")
    if _is_null(vnode):
        return {}
    if vnode.kind != "map":
        raise ConfigError(path, vnode.line, f"{section}.{name}", "not a mapping; edit it by hand")
    out = {}
    for k, v in vnode.pairs():
        if vnode.flow:
            out[k.value] = Field(_plain_value(v), source=_source(lines, v))
        else:
            start, end = _entry_lines(lines, k, v)
            out[k.value] = Field(_plain_value(v), tuple(lines[start:end]), k.start.column, _source(lines, v))
    return out


def _as_value(fld):
    if fld.source is not None:
        return _Raw(fld.source)
    return fld.value


def put_field(text, where, key, fld, path="microseg.yaml"):
    """Set `key` of the entry back to `fld` (a Field of fields_of), or remove it (None)."""
    if fld is None:
        return remove_key(text, where, key, path)
    now = fields_of(text, where, path)
    if now is not None and fld.lines is not None:
        lines, _, root = _prepare(text, path)
        _, vnode = _block_entry(root, where, path) if now else (None, None)
        if vnode is not None and vnode.kind == "map" and not vnode.flow \
                and vnode.items[0].start.column == fld.column:
            return _set_one_key(text, where, key, None, path, lines_of_value=list(fld.lines))
    return set_entry(text, where, {key: _as_value(fld)}, merge=True, path=path)


def inverse(old, new, current, where, path="microseg.yaml"):
    """Take back the edit old -> new of the entry `where` from `current`, the
    file as it is now: each field that edit changed goes back to what it
    was, unless it no longer holds what that edit wrote (someone changed it
    since: theirs stays).  An entry the edit created goes when it is empty
    again.  Returns (text, kept): kept lists (field, its value now) of what
    was left as someone else made it."""
    if current == new:
        return old, []
    before, after = fields_of(old, where, path), fields_of(new, where, path)
    now = fields_of(current, where, path)
    text, kept = current, []
    for key in dict.fromkeys([*(after or {}), *(before or {})]):
        b, a = (before or {}).get(key), (after or {}).get(key)
        n = (now or {}).get(key)
        if _same(b, a) or _same(n, b):
            continue                # not that edit's, or already as it was
        if not _same(n, a):
            kept.append((".".join((*where, key)), None if n is None else n.value))
            continue
        text = put_field(text, where, key, b, path)
    if before is None and fields_of(text, where, path) == {}:
        text = remove_entry(text, where, path)
    return text, kept


def _same(x, y):
    return (x is None and y is None) or (x is not None and y is not None and x.value == y.value)
