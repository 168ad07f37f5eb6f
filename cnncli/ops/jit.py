"""The one way engine kernels are compiled.

nogil: worker threads run kernels side by side. cache: compiled code is kept on disk, so a new
process starts in well under a second. fastmath: reductions and selects vectorise.
error_model="numpy": a float division is plain IEEE division; Python's error model adds a
division-by-zero check that stops LLVM from vectorising (7x slower on a division loop here).
"""

from __future__ import annotations

from numba import njit

kernel = njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
