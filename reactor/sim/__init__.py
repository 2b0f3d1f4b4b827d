"""OKX v5 simulator: exchange mechanics, scenario files, and a loopback server."""
