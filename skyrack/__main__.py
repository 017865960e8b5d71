from skyrack.cli import main

raise SystemExit(main())
