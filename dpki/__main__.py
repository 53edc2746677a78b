"""Run the command line as ``python -m dpki``."""

from dpki.cli import main

main()
