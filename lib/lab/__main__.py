"""`python -m lib.lab ...`"""

import sys

from .cli import main

sys.exit(main())
