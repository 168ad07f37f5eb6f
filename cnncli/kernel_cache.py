"""Where Numba keeps compiled kernels: a per-user cache directory, never inside the package.

Numba's default puts its cache in ``__pycache__`` beside the source. For an installed package that
is ``site-packages/cnncli/__pycache__``, which pip does not own: a later ``pip install -e .`` removes
the package but leaves that directory, and it then shadows the editable install. So the cache lives
in ``$NUMBA_CACHE_DIR`` when the user set it, else ``$XDG_CACHE_HOME/cnncli`` (``~/.cache/cnncli``).
Numba keys each cache file by the source file's full path, so several checkouts can share one
directory. This module must not import numba: it runs before the first kernel module is imported.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def kernel_cache_dir() -> Path:
    """The directory compiled kernels are cached in (created on first use)."""
    explicit = os.environ.get("NUMBA_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnncli"


def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
        return True
    except OSError:
        return False


def configure() -> Path:
    """Point Numba's cache at :func:`kernel_cache_dir` (or a private temp dir if that is not writable)."""
    directory = kernel_cache_dir()
    if not _writable(directory):
        directory = Path(tempfile.gettempdir()) / f"cnncli-kernels-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
        directory.mkdir(mode=0o700, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = str(directory)
    numba = sys.modules.get("numba")
    if numba is not None:  # imported before cnncli: its config has already read the environment
        numba.config.CACHE_DIR = str(directory)
    return directory
