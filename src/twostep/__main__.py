"""``python -m twostep``: the same as the ``twostep`` command, e.g. from a checkout without the script installed."""

from twostep.cli import main

raise SystemExit(main())
