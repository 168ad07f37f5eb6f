"""The one exception type for mistakes a user can fix, and where they happened."""

from __future__ import annotations

from dataclasses import dataclass, field

SHOWN_CHARS = 200  # a quoted value longer than this is cut when echoed, so it cannot flood a terminal
SHOWN_MESSAGE = 1000  # the same for a whole message, which may quote several values


def printable(text: object, limit: int | None = None) -> str:
    """Input made safe to echo to a terminal: control and format characters (escape sequences, NUL,
    line breaks, bidirectional overrides) appear escaped as \\x1b, \\n, \\u202e; `limit` cuts long text.

    The one place where text from a spec, a file name or data is prepared for the terminal: the error
    printer and every report use it.
    """
    text = str(text)
    if limit is not None and len(text) > limit:
        text = text[:limit] + f"... ({len(text):,} characters)"
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


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
        # Every part may quote the user's input: each is escaped on its own, so the only line
        # breaks are the ones that separate the parts.
        head = f"{printable(self.where)}: " if self.where else ""
        if self.layer:
            named = f" ({printable(self.node)})" if self.node else ""
            head += f"layer '{printable(self.layer, SHOWN_CHARS)}'{named}: "
        text = head + printable(self.message, SHOWN_MESSAGE)
        for call in self.calls:
            text += f"\n  {printable(call, SHOWN_CHARS)}"
        if self.hint:
            text += f"\n  hint: {printable(self.hint, SHOWN_MESSAGE)}"
        return text


class LayerError(Exception):
    """Raised by a layer kind's rules; the spec compiler adds the position and becomes a UserError."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
