"""PyYAML's node tree of a file, with its errors as ConfigError (pure).

The one place microseg.yaml is composed, for reading (microseg_yaml.py) and
for editing in place (policy/yamledit.py).  The C loader when PyYAML has it.
"""

import yaml

from ..model.errors import ConfigError

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def compose(text, path, problem="not valid YAML"):
    """The root node (None for an empty file); ConfigError with the line."""
    try:
        return yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(path, line, None, f"{problem}: {getattr(e, 'problem', None) or e}") from None


def line_of(node):
    """1-based line of a node."""
    return node.start_mark.line + 1
