from __future__ import annotations

from pathlib import Path

import pytest

from cnncli.errors import UserError
from cnncli.spec import loads

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURES = ROOT / "architectures"


def spec_error(text: str, file: str = "t.yaml") -> UserError:
    """Load a spec that must fail and return its error."""
    with pytest.raises(UserError) as info:
        loads(text, file)
    return info.value


def net(chain: str, input: str = "1x28x28", extra: str = ""):
    return loads(f"input: {input}\n{extra}net: {chain}\n", "t.yaml")
