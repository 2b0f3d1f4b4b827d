"""okx-margin-reactor: keeps isolated margin of OKX swap positions at the desk's targets."""

from importlib.metadata import PackageNotFoundError, version


def _installed_version() -> str:
    """The installed distribution's version (from git tags at build time, setuptools-scm)."""
    try:
        return version("okx-margin-reactor")
    except PackageNotFoundError:  # a source tree on sys.path without an install
        return "0.0.0+unknown"


__version__ = _installed_version()
