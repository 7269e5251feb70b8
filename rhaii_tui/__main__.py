from rhaii_tui.cli import main

raise SystemExit(main())
