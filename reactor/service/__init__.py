"""The running process: composition root, runtime, accounts, loops, reload, systemd."""
