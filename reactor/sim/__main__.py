import sys

from reactor.sim.cli import main

raise SystemExit(main(sys.argv[1:]))
