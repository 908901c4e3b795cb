"""Butler for Qlik Sense access licenses: monitor use, release inactive allocations, serve the /v4 API."""

__version__ = "0.1.0"
