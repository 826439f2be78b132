"""The package version, in a leaf module that the package root and the record calls (``log_summary``) import."""

__version__ = "0.1.0"
