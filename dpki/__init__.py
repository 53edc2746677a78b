"""DPKI: certificate management on a consortium ledger (X.1409-style distributed PKI)."""

#: the one version of the package, its command line and the inquiry node's HTTP API; the
#: contract's ``version()`` says the same (tests/test_registry.py checks it)
__version__ = "2.1.0"
