"""``python -m seasoned.cli``."""

from .main import main

main()
