// runner/hint_gate.h: turns notifications into a bounded number of queries.
//
// Any role that can log in can NOTIFY execguard_work and execguard_cancel
// as often as it likes (PostgreSQL has no privilege for LISTEN or NOTIFY).
// So a notification is only a hint that something may have changed, and a
// flood of them must not become a flood of queries. A HintGate coalesces:
// the first hint after a quiet spell is acted on at once; hints that
// arrive before `spacing` has passed since that action count as one, which
// is acted on when the spacing has passed. Whatever the rate of hints, the
// action runs at most once per spacing, and a hint is never lost.
//
// Time is passed in (as in backoff.h), so the unit tests need no clock.
#pragma once

#include "backoff.h"

namespace execguard::runner {

class HintGate {
public:
    explicit HintGate(double spacing_seconds) : spacing_(seconds_to_duration(spacing_seconds)) {}

    void hint() { pending_ = true; }
    bool pending() const { return pending_; }
    // When the pending hint may be acted on (meaningful while pending()).
    TimePoint due() const { return next_allowed_; }
    // True when a hint is pending and due: the caller acts on it now, and
    // hints from here on wait for the spacing.
    bool take(TimePoint now);
    // Forgets a pending hint that needs no action (nothing to check), so
    // it does not delay the next one.
    void drop() { pending_ = false; }

private:
    Clock::duration spacing_;
    bool pending_ = false;
    TimePoint next_allowed_{};
};

}  // namespace execguard::runner
