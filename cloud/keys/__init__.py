"""The issuer's own private keys: the ACME account key, the signing key and the escrow key, and
where they are kept (a local directory or AWS Secrets Manager).
"""
