"""The package version: a leaf module, so that the run record can note it without importing the package root."""

__version__ = "0.1.0"
