"""``python -m sklearn_attns``: the command line of the paper's experiments.

The command line lives in ``sklearn_attns.experiments.cli``, an application built on
the library; this module only starts it.
"""

import sys

from .experiments.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
