// runner/backoff.cpp
#include "backoff.h"

#include <algorithm>
#include <cmath>

namespace execguard::runner {

double ExponentialBackoff::delay(int failures) const {
    if (failures <= 0) return 0;
    // 2^60 already exceeds any sane ceiling; clamp so pow cannot overflow.
    const double factor = std::pow(2.0, std::min(failures - 1, 60));
    return std::min(max_, base_ * factor);
}

CircuitBreaker::CircuitBreaker(int threshold, double cooldown_seconds, double cooldown_max_seconds)
    : threshold_(threshold),
      cooldown_base_(cooldown_seconds),
      cooldown_max_(cooldown_max_seconds),
      cooldown_(cooldown_seconds) {}

CircuitBreaker::State CircuitBreaker::state(TimePoint now) {
    if (state_ == State::open && now >= open_until_) state_ = State::half_open;
    return state_;
}

void CircuitBreaker::open(TimePoint now, double retry_after_seconds) {
    state_ = State::open;
    ++times_opened_;
    open_until_ = now + seconds_to_duration(std::max(cooldown_, retry_after_seconds));
}

void CircuitBreaker::record_rate_limited(TimePoint now, double retry_after_seconds) {
    ++consecutive_failures_;
    switch (state(now)) {
        case State::closed:
            if (consecutive_failures_ >= threshold_) {
                cooldown_ = cooldown_base_;
                open(now, retry_after_seconds);
            }
            break;
        case State::half_open:
            // The probe failed: the provider is still refusing.
            cooldown_ = std::min(cooldown_max_, cooldown_ * 2);
            open(now, retry_after_seconds);
            break;
        case State::open:
            // A call started before the breaker opened; it tells nothing new
            // except, perhaps, a longer Retry-After.
            open_until_ = std::max(open_until_, now + seconds_to_duration(retry_after_seconds));
            break;
    }
}

void CircuitBreaker::record_success() {
    state_ = State::closed;
    consecutive_failures_ = 0;
    cooldown_ = cooldown_base_;
}

const char* to_string(CircuitBreaker::State state) {
    switch (state) {
        case CircuitBreaker::State::closed:
            return "closed";
        case CircuitBreaker::State::open:
            return "open";
        case CircuitBreaker::State::half_open:
            return "half_open";
    }
    return "closed";
}

}  // namespace execguard::runner
