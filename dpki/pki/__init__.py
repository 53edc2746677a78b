"""Certificate rules: X.509 parsing, the admission policy, issuer look-ups, code tables."""
