"""certdrop's issuing side.

Issues wildcard certificates by ACME DNS-01 for many sites, seals each bundle to the NAS agents
subscribed to it and publishes it to object storage. Runs as the `certdrop` CLI locally and as
AWS Lambda functions in production.
"""
