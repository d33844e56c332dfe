import sys

from rnnkit.native import main

sys.exit(main())
