"""One module per matrix format; importing this package registers them all."""

# registration order is the order of sc.formats(): simplest first
from . import dense  # noqa: I001,F401
from . import compressed  # noqa: F401
from . import coo  # noqa: F401
from . import index_map  # noqa: F401
from . import ham  # noqa: F401
from . import sham  # noqa: F401
from . import sham_gap  # noqa: F401
from . import sham_ans  # noqa: F401
from . import cer  # noqa: F401
from . import cser  # noqa: F401
from . import pq  # noqa: F401
from . import grid  # noqa: F401
from . import scaled  # noqa: F401
from . import float_ans  # noqa: F401
from .base import Encoded, Matrix, registry

__all__ = ["Encoded", "Matrix", "registry"]
