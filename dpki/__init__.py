"""DPKI."""
