from reactor.cli.main import main

raise SystemExit(main())
