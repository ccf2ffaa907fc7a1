from isobuilder.cli import main

raise SystemExit(main())
