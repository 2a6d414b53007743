"""How far apart the account's slots must be for calls that reach Twilio up to a known time after
their slots (the jitter budget) to keep both of Twilio's limits: ACCOUNT_CPS in any second and
ACCOUNT_CPS/10 + 1 in any 100 ms.

Slots 1/rate apart, each call arriving between its slot and `jitter` after it: the calls
arriving in a window [t, t + w) had their slots in [t - jitter, t + w), which holds at most
ceil((w + jitter) * rate) slots. So (1 + jitter) * rate <= CPS and
(0.1 + jitter) * rate <= CPS/10 + 1 keep the limits whatever each call's lateness within the
budget, where a fixed share of headroom covers a budget that shrinks as the rate grows (1% at
300 CPS: 4.4 ms for the 100-ms limit).
See docs/decisions/jitter-budget.md.
"""

from __future__ import annotations

import math

# Twilio's short window, and its limit (ACCOUNT_CPS/10 + 1 calls).
SHORT_WINDOW_SECONDS = 0.1
# Float sums of a second's slots must not land a slot inside a window that the exact arithmetic
# keeps out: the rate is taken this much below the bound.
_ROUNDING = 1e-9
# Arrival jitter the slots are spaced for beyond the sender's own tolerance: the time from the
# sender's last check to the request's arrival. On a quiet 2-core machine at 200 CPS the local
# stack measured p99 0.9 ms, at most 3.3 ms; a write found later than the budget makes the
# sender's next calls go later (chalicelib.sending.pacing).
WRITE_JITTER_SECONDS = 0.005


def short_limit(cps: float) -> int:
    """Twilio's limit in any 100 ms for an account of `cps` calls a second."""
    return math.floor(cps / 10) + 1


def spaced_rate(cps: float, jitter: float) -> float:
    """The highest rate whose slots, each call arriving up to `jitter` seconds after its own,
    put no more than `cps` calls in any second nor short_limit(cps) in any 100 ms."""
    if cps <= 0:
        return 0.0
    jitter = max(0.0, jitter)
    second = cps / (1.0 + jitter)
    short = short_limit(cps) / (SHORT_WINDOW_SECONDS + jitter)
    return min(second, short) * (1.0 - _ROUNDING)


def account_rate(cps: float, headroom: float, tolerance: float) -> float:
    """The rate the account's slots are laid out at: RATE_HEADROOM below ACCOUNT_CPS, and no more
    than spaced_rate for the sender's tolerance and the write jitter.

    The sender's tolerance is never more than one slot at this rate (Pacer.tolerance), which at
    high rates is shorter than `tolerance`: the budget is then that slot, taken at the rate the
    configured tolerance gives. A budget is only ever shortened to a slot of a slower rate, so it
    stays at least what the sender allows at the rate returned (at 2,000 CPS: 1,904 slots a
    second, not 1,827)."""
    ceiling = cps * (1.0 - headroom)
    first = min(ceiling, spaced_rate(cps, tolerance + WRITE_JITTER_SECONDS))
    if first <= 0:
        return first
    allowed = min(tolerance, 1.0 / first)
    return min(ceiling, spaced_rate(cps, allowed + WRITE_JITTER_SECONDS))


def allowed_lateness(rate: float, tolerance: float) -> float:
    """How late the sender lets a call go for its slot at `rate`: its tolerance, at most one
    slot (the rule Pacer.tolerance applies)."""
    return min(tolerance, 1.0 / rate) if rate > 0 else tolerance


def quiet_until(slot: float, written_at: float, budget: float) -> float | None:
    """A call written `written_at` for `slot`: None within the budget; later than it, the time
    until which the sender's next calls must not go (one short window past the write), so that
    none of them shares a 100 ms with it (the late call may have taken a window's last place)."""
    if written_at - slot <= budget:
        return None
    return written_at + SHORT_WINDOW_SECONDS
