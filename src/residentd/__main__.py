"""``python -m residentd`` is the ``residentd`` command."""

import sys

from residentd.cli import main

sys.exit(main())
