"""python -m skbsim.fast: compile the fast engine into its cache now (see skbsim.fast.cache.main)."""

import sys

from skbsim.fast.cache import main

sys.exit(main())
