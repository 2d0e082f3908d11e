"""The agent's client for DSM's certificate web API (reference: dsm-certificate-api.md): transport,
login, typed answers, the remembered 2FA device, and its errors.
"""

# Seconds per DSM request unless configured: generous, as one DS920+ took up to 62 s for a login
# (reference §9).
REQUEST_TIMEOUT = 90.0
# DSM's pinned certificates, in the agent's state directory (`nas_agent.dsm.pinning`); here, where
# reading agent.conf finds it without importing requests.
PIN_FILE = "dsm-tls-pin"
