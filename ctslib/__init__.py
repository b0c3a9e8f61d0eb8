"""ctslib: the thin, typed library behind the CTS ultrasound severity study notebooks.

One module per concern (see README "Library map"); the study's decisions (NCS limits, split
policy, hyper-parameters) are read in the notebooks, the reusable code lives here.
"""

__version__ = "0.1.0"

GRADES: tuple[str, ...] = ("normal", "mild", "moderate", "severe")
"""The four severity levels, in ordinal order (index = class id everywhere)."""

PLANES: tuple[str, ...] = ("transverse", "longitudinal")
SIDES: tuple[str, ...] = ("L", "R")
