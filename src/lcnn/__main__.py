"""``python -m lcnn`` runs the command line."""

import sys

from lcnn.cli import main

if __name__ == "__main__":
    sys.exit(main())
