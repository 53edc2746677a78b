"""Command implementations for the ``dpki`` command line, one module per area."""
