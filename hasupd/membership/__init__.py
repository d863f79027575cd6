"""Membership: who is alive, over which rings, and whether a takeover is safe.

* ``wire``       signed heartbeat packets (pure): encode/decode, replay guard, key files
* ``heartbeat``  the asyncio heartbeat on every ring: peer liveness and state
* ``tiebreaker`` the split-brain guard's inputs: PingGuard (tie-breaker
                 reachability with hysteresis); fencing is hasupd.fencing
"""
