from piiblur.cli import main

raise SystemExit(main())
