"""ACME (RFC 8555) with one CA: the client and session, the CA's problems translated into
certdrop errors, renewal information (ARI, RFC 9773), chain choice, certificate keys and CSRs, and
the order of one site's certificate.
"""
