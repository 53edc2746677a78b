"""Development tooling: the embedded devnet, the demo, demo devices, the contract build."""
