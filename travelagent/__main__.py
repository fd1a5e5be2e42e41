from __future__ import annotations

import sys

from travelagent.cli import main

sys.exit(main())
