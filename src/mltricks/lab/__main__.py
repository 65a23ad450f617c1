"""``python -m mltricks.lab`` is the ``mltricks`` command (used by ``accelerate launch -m``)."""

import sys

from mltricks._command import main

sys.exit(main())
