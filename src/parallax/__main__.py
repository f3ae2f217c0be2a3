"""`python -m parallax` is the `parallax` command."""

from parallax.cli import main

raise SystemExit(main())
