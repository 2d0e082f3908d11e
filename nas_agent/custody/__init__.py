"""Agent key custody (CSR mode): the site's private key is made on the NAS and never leaves it.

docs/key-custody.md is the contract and docs/bundle-format.md sections 9-11 the bytes. The
issuer says which sites are in agent custody (`nas_agent.bundle.key_requests`); for each the agent
keeps its keys (`key_store`), makes a key of the requested type and a CSR (`keygen`), signs a CSR
statement (`statement`, which the issuer also imports to check one) and posts it through its
source (`preparation`). The certificate comes back as a `certdrop-leaf-v1` plaintext
(`nas_agent.bundle.leaf`) and is installed with the key the agent kept.
"""
