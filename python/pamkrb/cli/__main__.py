"""``python -m pamkrb.cli``: the same as the ``pamkrb`` command."""

import sys

from . import main

sys.exit(main())
