"""Sub-commands of the ``geocorr`` CLI (see :mod:`geocorr.cli`)."""
