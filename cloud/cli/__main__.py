"""`python -m cloud.cli`: the same as the `certdrop` command."""

from cloud.cli.main import main

raise SystemExit(main())
