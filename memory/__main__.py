"""``python -m seasoned.memory.admin`` also works; this makes ``python -m seasoned.memory`` the admin tool too."""

import sys

from .admin import main

sys.exit(main())
