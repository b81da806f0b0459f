// runner/backoff.h: exponential backoff and the per-region circuit breaker.
//
// Both take the current time as an argument, so they are pure state
// machines that unit tests drive without sleeping.
#pragma once

#include <chrono>

namespace execguard::runner {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

inline Clock::duration seconds_to_duration(double seconds) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// delay(n) = min(max, base * 2^(n-1)) for the n-th consecutive failure
// (n >= 1); n <= 0 gives 0.
class ExponentialBackoff {
public:
    ExponentialBackoff(double base_seconds, double max_seconds) : base_(base_seconds), max_(max_seconds) {}
    double delay(int failures) const;

private:
    double base_;
    double max_;
};

// Breaker for one region endpoint. Rate-limit (and billing) failures are
// fed in; after `threshold` in a row it opens for a cool-down, during which
// the runner does not claim that region's executions (so they keep their
// attempts). When the cool-down is over it is half-open: one probe call is
// allowed; success closes it, failure re-opens it with the cool-down doubled
// up to `cooldown_max`. A provider's Retry-After lengthens the cool-down.
class CircuitBreaker {
public:
    enum class State { closed, open, half_open };

    CircuitBreaker(int threshold, double cooldown_seconds, double cooldown_max_seconds);

    // Current state; moves open -> half_open once the cool-down has passed.
    State state(TimePoint now);
    void record_rate_limited(TimePoint now, double retry_after_seconds = 0);
    void record_success();

    int times_opened() const { return times_opened_; }
    int consecutive_failures() const { return consecutive_failures_; }
    double current_cooldown_seconds() const { return cooldown_; }
    TimePoint open_until() const { return open_until_; }

private:
    void open(TimePoint now, double retry_after_seconds);

    int threshold_;
    double cooldown_base_;
    double cooldown_max_;
    double cooldown_;  // cool-down used by the latest opening
    State state_ = State::closed;
    int consecutive_failures_ = 0;
    int times_opened_ = 0;
    TimePoint open_until_{};
};

const char* to_string(CircuitBreaker::State state);

}  // namespace execguard::runner
