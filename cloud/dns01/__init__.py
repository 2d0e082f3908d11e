"""The DNS-01 challenge: where each TXT record lives (`names`), placing and removing values with a
journal (`solver`), waiting until every authoritative nameserver serves them (`propagation`), and
the DNS providers that add and remove single TXT values (`providers`).
"""
