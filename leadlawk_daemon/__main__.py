from leadlawk_daemon.cli import main

raise SystemExit(main())
