"""Publishing: the registry of enrolled agents, and sealing each certificate for the escrow key and
every agent that receives its site.
"""
