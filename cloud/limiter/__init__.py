"""The limiter: orders paced under the CA's rate limits, so a fleet never bursts past them.

The limits are token buckets (`[ca.limits]`, Let's Encrypt's by default: `cloud.config.ca_limits`).
certdrop keeps its own copy of the buckets it spends, one object per CA in the store
(`ledger.py`), and consults it in two places:

- the scheduler (the tick and `certdrop run`) plans: of the sites due, the ones every bucket
  they need has a token for go now, most urgent (fewest days left) first; the others wait, each
  with the moment it will go (`plan.py`). Status and the dashboard show the same plan;
- a site's run, just before it places an order, takes the tokens by a conditional write
  (`gate.py`), so two runs acting at once can never both spend the last one; without a token it
  places nothing and says when it will go. A `rateLimited` answer empties the buckets the order
  was subject to until the CA's Retry-After; failed authorizations are spent per identifier.

What an order is subject to depends on what it is (`orders.py`): a first issuance, a renewal of
the same names, or a renewal that `replaces` its certificate (ARI). Registered domains come from
the Public Suffix List shipped inside the package used (`registered_domain.py`), never fetched.
"""
