from reactor.cli import main

raise SystemExit(main())
