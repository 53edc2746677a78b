"""Ledger client: JSON-RPC transport, ABI, transactions, the typed registry, deployment, keys."""
