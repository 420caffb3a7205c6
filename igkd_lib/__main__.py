"""``python -m igkd_lib``: the command line; its exit status is :func:`igkd_lib.cli.main`'s."""
import sys

from igkd_lib.cli import main

sys.exit(main())
