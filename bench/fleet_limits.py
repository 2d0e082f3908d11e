"""A fleet within the CA's limits: 10,000 sites over 30 simulated days, on 6-day and 45-day
certificates, from a cold start (nothing issued) and from a steady state (which takes on 10%
more sites at once on day 10), with certdrop's limiter on; and the 6-day cold start with it off,
to show the stand-in refusing what the limiter keeps back (`--all-off`: every scenario off too).

Runs certdrop's real tick, schedule and limiter with a fake clock against a CA stand-in that
enforces Let's Encrypt's published limits and answers through certdrop's ACME error translation
(`lab.fleet_sim`, `lab.limited_ca`). Prints, per scenario: the orders the CA created and the
most in any 3 hours, the CA's rateLimited answers by limit, the certificates that expired (the
goal is 0), and how late renewals were issued and how long first issuances waited.

    .venv/bin/python bench/fleet_limits.py [--sites 10000] [--days 30] [--jobs 2] [--all-off]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud.limiter.registered_domain import psl_version
from lab.fleet_sim import Result, Scenario, percentiles, simulate


def scenarios(sites: int, days: float, all_off: bool) -> list[Scenario]:
    found = []
    for lifetime in (6, 45):
        for cold in (True, False):
            for limiter in (True, False):
                if limiter or all_off or (cold and lifetime == 6):
                    found.append(
                        Scenario(
                            sites=sites,
                            days=days,
                            lifetime=timedelta(days=lifetime),
                            cold=cold,
                            limiter=limiter,
                        )
                    )
    return found


def report(result: Result) -> str:
    s = result.scenario
    hits = ", ".join(f"{limit}: {n}" for limit, n in sorted(result.limit_hits.items()))
    late = _spread(result.lateness)
    waits = _spread(result.first_waits)
    lines = [
        f"{s.describe()}  ({result.wall:.0f} s)",
        f"  orders            {result.orders}; most in any 3 h: {result.peak_orders_3h} "
        f"({result.peak_counted_3h} counted against new orders per account)",
        f"  limit hits        {result.hits}" + (f" ({hits})" if hits else ""),
        f"  expired           {result.expired}   never issued at the end: {result.never_issued}",
        f"  renewal lateness  hours past 2/3 of the lifetime: {late}  (n={len(result.lateness)})"
        if result.lateness
        else "  renewal lateness  no renewal came due in the simulated days",
        f"  first issuance    hours waited: {waits}  (n={len(result.first_waits)})",
        f"  held back by the limiter at the last moment: {result.waiting_runs} run(s); "
        f"failed validations: {result.failed_validations}",
    ]
    return "\n".join(lines)


def _spread(hours: list[float]) -> str:
    labels = ("p50", "p90", "p99", "max")
    pairs = zip(labels, percentiles(hours), strict=True)
    return "  ".join(f"{label} {value:.1f}" for label, value in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--jobs", type=int, default=2, help="scenarios simulated at once")
    parser.add_argument("--all-off", action="store_true", help="every scenario without it too")
    args = parser.parse_args()
    runs = scenarios(args.sites, args.days, args.all_off)
    first = runs[0]
    print(
        f"fleet_limits: {args.sites} sites over {args.days:g} days; tick every "
        f"{first.tick.total_seconds() / 3600:g} h; issue function {first.workers} at once, "
        f"{first.order_seconds:g} s per order; CA stand-in enforcing Let's Encrypt's limits; "
        f"Public Suffix List {psl_version()}",
        flush=True,
    )
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for result in pool.map(simulate, runs):
            print(report(result), flush=True)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
