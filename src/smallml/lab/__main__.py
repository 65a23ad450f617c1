"""``python -m smallml.lab`` is the ``smallml`` command (used by ``accelerate launch -m``)."""

import sys

from smallml.lab.cli import main

sys.exit(main())
