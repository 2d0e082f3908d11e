"""Agent custody (CSR mode, docs/key-custody.md), the issuer's side: which sites each agent makes
keys for (`key_requests.py`), the agent's CSR statements and leaf bundles as the agent side
defines them (`agent_side.py`, the one place they are wired in), publishing a certificate's leaf
without a key (`leaves.py`), an order journalled with the statement it came from and what is
checked before it is resumed (`order_journal.py`), and when an agent's certificate is due
(`renewal.py`). The run itself is `cloud.pipeline.agent_custody`.
"""
