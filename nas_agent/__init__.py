"""certdrop's NAS agent: it runs on a Synology NAS (DSM 7's Python 3.8 and newer), polls its own
prefix of the object store outbound, verifies the issuer's signed index, opens the HPKE-sealed
certificate bundle with its own key, checks it (key, chain, names, validity, version) and imports
it through DSM's web API, then reports back. It opens no port and holds no cloud credential beyond
read access to its prefix.

The bundle contract (`nas_agent.bundle`) lives here so the agent stays self-contained; the cloud
imports it to seal and sign. Nothing in this package imports `cloud`.
"""
