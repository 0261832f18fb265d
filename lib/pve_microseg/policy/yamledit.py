"""Edit /etc/pve/microseg.yaml in place, keeping the operator's comments and layout (pure).

PyYAML cannot write a file back with its comments, so edits are textual:
the file is composed (parse/yamlnodes.py, with line marks), the entry to
change is located by its lines, and only those lines are replaced, removed
or inserted.  Everything else comes back byte for byte.  Entries we write
use two-space indentation (or the indentation of their siblings).

    set_entry(text, ("bridges", "web"), {"gateway-mac": "..", ...})   add or replace
    remove_entry(text, ("bridges", "web"))                             remove
    set_entry(text, ("guests", "101"), {"chain": "local:snippets/x"}, merge=True)

With merge=True only the given keys of an existing entry are replaced or
added; its other lines (comments, block lists) stay.  The result is parsed
again by the caller before it is written.
"""

import re

import yaml

from ..model.errors import ConfigError
from ..parse.yamlnodes import compose

_BREAK = re.compile(r"(\r\n|[\r\n\x85\u2028\u2029])")      # the line breaks PyYAML counts


def _lines(text):
    parts = _BREAK.split(text)
    out = [parts[i] + parts[i + 1] for i in range(0, len(parts) - 1, 2)]
    return out + ([parts[-1]] if parts[-1] else [])


def _compose(text, path):
    return compose(text, path, problem="not valid YAML, not edited")


def _child(mapping, key):
    if not isinstance(mapping, yaml.MappingNode):
        return None
    for k, v in mapping.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None


def _scalar(value):
    text = str(value)
    return "''" if text == "" else text


def _render_value(value):
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_scalar(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _render_entry(key, fields, indent):
    pad = " " * indent
    lines = [f"{pad}{key}:\n"]
    for k, v in fields.items():
        lines.append(f"{pad}  {k}: {_render_value(v)}\n")
    return lines


def _last_line(node):
    """The last line (0-based) holding any of this node's text."""
    if isinstance(node, yaml.ScalarNode) or node.flow_style:
        m = node.end_mark
        return m.line if m.column > 0 else m.line - 1
    children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else node.value
    return max([node.start_mark.line] + [_last_line(c) for c in children])


def _entry_lines(lines, knode, vnode):
    """Line range [start, end) of a `key: value` entry; blank and comment
    lines after it belong to whatever follows."""
    start = knode.start_mark.line
    end = max(_last_line(vnode), start) + 1
    while end - 1 > start and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1
    return start, end


def _existing_fields(vnode):
    out = {}
    if isinstance(vnode, yaml.MappingNode):
        for k, v in vnode.value:
            if isinstance(v, yaml.SequenceNode):
                out[k.value] = [i.value for i in v.value]
            elif isinstance(v, yaml.MappingNode):
                out[k.value] = {kk.value: vv.value for kk, vv in v.value}
            else:
                out[k.value] = v.value
    return out


def set_entry(text, where, fields, merge=False, path="microseg.yaml"):
    """Add or replace `<section>: <key>: {fields}`; with merge, keep the
    entry's other fields.  Returns the new text."""
    section, key = where
    lines = _lines(text)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    root = _compose(text, path)
    if root is not None and not isinstance(root, yaml.MappingNode):
        raise ConfigError(path, 1, None, "the file is not a mapping; not edited")
    found = _child(root, section) if root is not None else None
    if found is None:
        if lines and lines[-1].strip():
            lines.append("\n")
        return "".join(lines + [f"{section}:\n"] + _render_entry(key, fields, 2))
    skey, svalue = found
    if not isinstance(svalue, yaml.MappingNode) or svalue.flow_style:
        if isinstance(svalue, yaml.ScalarNode) and svalue.value in ("", "~", "null"):
            start, end = _entry_lines(lines, skey, svalue)
            lines[start:end] = [f"{section}:\n"] + _render_entry(key, fields, 2)
            return "".join(lines)
        raise ConfigError(path, skey.start_mark.line + 1, section,
                          "not a block mapping; edit it by hand")
    entry = _child(svalue, key)
    indent = svalue.value[0][0].start_mark.column if svalue.value else 2
    if entry is None:
        _, last_v = svalue.value[-1]
        _, end = _entry_lines(lines, svalue.value[-1][0], last_v)
        lines[end:end] = _render_entry(key, fields, indent)
        return "".join(lines)
    knode, vnode = entry
    if merge and isinstance(vnode, yaml.MappingNode) and not vnode.flow_style and vnode.value:
        text = "".join(lines)
        for k, v in fields.items():
            text = _set_one_key(text, where, k, v, path)
        return text
    if merge:
        fields = dict(_existing_fields(vnode), **fields)
    start, end = _entry_lines(lines, knode, vnode)
    lines[start:end] = _render_entry(key, fields, knode.start_mark.column)
    return "".join(lines)


def _set_one_key(text, where, key, value, path):
    """Replace or add one key of a block-mapping entry; its other lines stay as they are."""
    section, name = where
    lines = _lines(text)
    vnode = _child(_child(_compose(text, path), section)[1], name)[1]
    indent = vnode.value[0][0].start_mark.column
    new = f"{' ' * indent}{key}: {_render_value(value)}"
    child = _child(vnode, key)
    if child is None:
        _, end = _entry_lines(lines, *vnode.value[-1])
        lines[end:end] = [new + "\n"]
    else:
        start, end = _entry_lines(lines, *child)
        comment = _trailing_comment(lines[start]) if end - start == 1 else ""
        lines[start:end] = [new + comment + "\n"]
    return "".join(lines)


def _trailing_comment(line):
    """` # ...` at the end of a one-line `key: value` (kept when the value changes)."""
    m = re.search(r"\s+#[^'\"]*$", line.rstrip("\r\n"))
    return m.group(0) if m else ""


def _remove(text, keys, path):
    """Remove the entry at this key path (nothing to do if absent)."""
    node = _compose(text, path)
    found = None
    for key in keys:
        found = _child(node, key) if node is not None else None
        if found is None:
            return text
        node = found[1]
    lines = _lines(text)
    start, end = _entry_lines(lines, *found)
    del lines[start:end]
    return "".join(lines)


def remove_entry(text, where, path="microseg.yaml"):
    """Remove `<section>: <key>` (nothing to do if absent).  Returns the new text."""
    return _remove(text, where, path)


def remove_key(text, where, key, path="microseg.yaml"):
    """Remove one key of a block-mapping entry (nothing to do if absent)."""
    return _remove(text, (*where, key), path)
