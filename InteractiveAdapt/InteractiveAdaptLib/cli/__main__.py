"""`python -m InteractiveAdaptLib.cli`: the same as the `interactive-adapt` console script."""

import sys

from InteractiveAdaptLib.cli.main import main

sys.exit(main())
