"""``python -m geocorr``: the same as the ``geocorr`` command."""
import sys

from .cli import main

sys.exit(main())
