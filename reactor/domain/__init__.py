"""The desk's rules, pure: the position book, the margin policy, fills and maintenance counts.

No I/O and no clock of their own; the engine feeds them parsed OKX records and timestamps.
"""
