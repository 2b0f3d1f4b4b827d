"""okx-margin-reactor: keeps isolated margin of OKX swap positions at the desk's targets."""

__version__ = "0.1.0"
