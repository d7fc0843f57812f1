"""`python -m vxlan_conformance.lab ...`"""

import sys

from .cli import main

sys.exit(main())
