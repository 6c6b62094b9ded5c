"""`python -m cnnkit` (also what `torchrun -m cnnkit train ...` runs on every rank)."""
import sys

from cnnkit.cli import main

sys.exit(main())
