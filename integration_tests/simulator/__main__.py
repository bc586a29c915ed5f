"""`python -m integration_tests.simulator`: the simulator on a port until SIGTERM or Ctrl-C (see cli.py)."""
from .cli import main

raise SystemExit(main())
