"""cnncli: check, train and inspect convolutional networks written as YAML.

The spec API (no numba needed):

    from cnncli import load_spec
    spec = load_spec("architectures/resnet-50.yaml")
    spec.total_params, spec.total_macs, [(n.name, n.shape) for n in spec.nodes]
"""

__version__ = "0.1.0"

from . import kernel_cache  # noqa: E402

kernel_cache.configure()  # before any kernel module imports numba

from .errors import UserError  # noqa: E402
from .spec import Spec  # noqa: E402
from .spec import load as load_spec
from .spec import loads as parse_spec

__all__ = ["Spec", "UserError", "__version__", "load_spec", "parse_spec"]
