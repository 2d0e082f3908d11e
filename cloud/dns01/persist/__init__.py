"""dns-persist-01's DNS side: the one TXT record a domain's owner creates once, read-only.

    record.py   the value's grammar and whether values authorize this issuer (pure)
    check.py    reading the record at every authoritative nameserver of its zone
    howto.py    the record to create, in zone-file form, and how to create it at common hosts

certdrop writes nothing here: a dns-persist-01 site has no DNS provider and no credentials.
"""
