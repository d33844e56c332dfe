"""``python -m rnnkit`` (what torchrun launches: ``torchrun --nproc-per-node 2 -m rnnkit lm train ...``)."""

import sys

from rnnkit.cli import main

sys.exit(main())
