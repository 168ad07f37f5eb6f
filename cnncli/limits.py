"""Bounds on what a spec may ask for, so that any spec - even a hostile one - is answered quickly.

Each bound is far above what a real network needs (the largest shipped architecture, DenseNet-121,
has 426 layers in a 3 KB file) and each error names the bound it hit. The README's "Untrusted input"
section lists them; keep the two in step.
"""

MAX_SPEC_BYTES = 256 << 10  # a spec file: PyYAML's pure-Python parser needs about a second for this much
MAX_YAML_VALUES = 10_000  # YAML values, counted after aliases (*name) are expanded
MAX_YAML_DEPTH = 20  # nested YAML mappings and lists
MAX_NUMBER_DIGITS = 18  # digits of any number; keeps every size and product exact and in float range
MAX_NESTING = 50  # parentheses, merges and block calls inside one another, and (...) and - in ${...}
MAX_REPEAT = 10_000  # the N of a repeat (...) xN
MAX_BLOCK_DEPTH = 32  # blocks calling blocks
MAX_LAYERS = 10_000  # layers after expansion
MAX_STEPS = 30_000  # layers, ids, repeats and block calls visited while expanding (shipped specs: 1.2-1.6 a layer)
MAX_EXPANDED_CHARS = 1_000_000  # characters of block bodies after substitution, summed over all calls
