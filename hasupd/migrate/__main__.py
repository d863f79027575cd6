"""python -m hasupd.migrate {import|export} ... (the same as hasupctl import/export)."""

import sys

from hasupd.migrate import main

sys.exit(main())
