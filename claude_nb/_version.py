"""The one place the version is written: the package, the build (hatch) and the User-Agent read it."""
__version__ = "0.1.0"
