"""The ``reactor`` command: argument parsing in :mod:`.main`, one module per command group."""
