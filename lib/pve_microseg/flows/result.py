"""What every flow returns: data for the renderer, an exit status, warnings."""

from dataclasses import dataclass, field

from ..model.errors import ExitCode


@dataclass
class Result:
    """`data` is what `--output-format json` prints (and what the text
    renderer of the command reads); `warnings` go to stderr in every format."""

    data: dict
    exit: ExitCode = ExitCode.OK
    warnings: list = field(default_factory=list)
