"""DNS providers: each adds one TXT value and removes one TXT value (`base` has the contract,
`registry` every provider by type name).
"""
