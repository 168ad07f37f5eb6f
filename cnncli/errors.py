"""The one exception type for mistakes a user can fix, and where they happened."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Where:
    """A place in a spec file: 1-based line and column, and the text the user wrote there."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        out = self.file
        if self.line is not None:
            out += f":{self.line}"
            if self.column is not None:
                out += f":{self.column}"
        return out


@dataclass
class UserError(Exception):
    """A mistake in the user's input. The CLI prints it as one message and exits with code 2.

    Anything else that escapes is a bug in cnncli and may show a traceback.
    """

    message: str
    hint: str | None = None
    where: Where | None = None
    layer: str | None = None  # the layer as written, e.g. "conv k=16 f=9"
    node: str | None = None  # its stable name, e.g. "conv2"
    calls: list[str] = field(default_factory=list)  # "in block vgg(64,2) at a.yaml:7:6", innermost first
    exit_code: int = 2

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        head = f"{self.where}: " if self.where else ""
        if self.layer:
            named = f" ({self.node})" if self.node else ""
            head += f"layer '{self.layer}'{named}: "
        text = head + self.message
        for call in self.calls:
            text += f"\n  {call}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class LayerError(Exception):
    """Raised by a layer kind's rules; the spec compiler adds the position and becomes a UserError."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
