"""`python -m harness ...` is `drbench ...`: the form torchrun launches (`torchrun -m harness run RECIPE`)."""

import sys

from harness.cli import main

sys.exit(main())
