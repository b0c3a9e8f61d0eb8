"""Shared basics every stage uses: errors, seeds, paths, atomic output, display rules, the machine line.

Nothing here imports a study stage; every other package may import from here.
"""

__all__ = ["display", "errors", "handoff", "io", "machine", "parallel", "paths", "seed"]
