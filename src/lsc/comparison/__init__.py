"""``lsc.compare``: does an init help *this* model? Paired pilot runs of several inits on the
user's own model and data (:mod:`.inits`: what each entry of ``inits`` does; :mod:`.runs`:
the runs, resumable; :mod:`.result`: the :class:`Comparison` and its statistics)."""

from .result import Comparison
from .runs import CompareConfig, compare

__all__ = ["CompareConfig", "Comparison", "compare"]
