"""The DNS side of the challenges. dns-01: where each TXT record lives (`names`), placing and
removing values with a journal (`solver`), waiting until every authoritative nameserver serves
them (`propagation`), and the DNS providers that add and remove single TXT values (`providers`).
dns-persist-01 (`persist`): the one record a domain's owner creates, read-only at every
authoritative nameserver with the same `names` and `propagation`.
"""
