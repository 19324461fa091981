"""`python -m splade_connectors.cli` runs the `splade-connectors` command."""

import sys

from splade_connectors.cli import main

sys.exit(main())
