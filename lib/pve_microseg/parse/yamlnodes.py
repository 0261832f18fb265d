"""PyYAML's node tree of a file, with its errors as ConfigError (pure).

The one place microseg.yaml is composed, for reading (microseg_yaml.py) and
for editing in place (policy/yamledit.py).  The C loader when PyYAML has it.
"""

import yaml

from ..model.errors import ConfigError

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# No microseg.yaml needs more than a handful of levels.  Composing is
# recursive: the C loader's composer overflows the C stack (a segmentation
# fault that kills the if-up.d hook before it can fall back to the last good
# configuration) at a few ten thousand levels, 80 KB of `[[[...`, and the
# pure-Python one raises RecursionError at a thousand.  The parser's event
# stream is not recursive: it is read first, and stopped at the first level
# too deep, so a hostile file costs no more than its first MAX_DEPTH levels.
MAX_DEPTH = 64
_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _check_depth(text, path, problem):
    depth = 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, _OPEN):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(path, event.start_mark.line + 1, None,
                                  f"{problem}: nested deeper than {MAX_DEPTH} levels")
        elif isinstance(event, _CLOSE):
            depth -= 1


def compose(text, path, problem="not valid YAML"):
    """The root node (None for an empty file); ConfigError with the line."""
    try:
        _check_depth(text, path, problem)
        return yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(path, line, None, f"{problem}: {getattr(e, 'problem', None) or e}") from None
    except RecursionError:
        raise ConfigError(path, None, None, f"{problem}: nested too deeply") from None


def events(text, path, problem="not valid YAML"):
    """The parser's events of a file that composes (every check of `compose`
    first): what yamledit needs to see aliases where they are written."""
    compose(text, path, problem)
    return list(yaml.parse(text, Loader=_LOADER))


def line_of(node):
    """1-based line of a node."""
    return node.start_mark.line + 1
