"""The issuance pipeline: one recorded run per site (lock, decide, order or resume, publish, record,
schedule), the renewal policy it decides with, the site state it alone writes, the schedule
markers and the tick that finds due sites.
"""
