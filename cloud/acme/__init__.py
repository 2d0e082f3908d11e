"""ACME (RFC 8555) with one CA: the client and session, the CA's problems translated into
certdrop errors, renewal information (ARI, RFC 9773), chain choice, certificate keys and CSRs, the
challenge types, the order of one site's certificate, and dns-persist-01's side of it (`persist`).
"""
