"""python -m cellvae <command>: the same as the `cellvae` console script (cellvae.cli)."""

import sys

from cellvae.cli import main

if __name__ == "__main__":
    sys.exit(main())
