from saesite.cli import main

raise SystemExit(main())
