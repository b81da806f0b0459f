// test/unit/runner/backoff_test.cpp: exponential backoff and the circuit
// breaker, driven with explicit time points (no sleeping).
#include <gtest/gtest.h>

#include "backoff.h"

namespace execguard::runner {
namespace {

using std::chrono::milliseconds;
using State = CircuitBreaker::State;

TEST(ExponentialBackoff, DoublesUpToTheCeiling) {
    ExponentialBackoff b(0.5, 4);
    EXPECT_DOUBLE_EQ(b.delay(0), 0);
    EXPECT_DOUBLE_EQ(b.delay(1), 0.5);
    EXPECT_DOUBLE_EQ(b.delay(2), 1);
    EXPECT_DOUBLE_EQ(b.delay(3), 2);
    EXPECT_DOUBLE_EQ(b.delay(4), 4);
    EXPECT_DOUBLE_EQ(b.delay(5), 4);
    EXPECT_DOUBLE_EQ(b.delay(10000), 4);
}

TEST(CircuitBreaker, OpensAfterThresholdConsecutiveRateLimits) {
    CircuitBreaker cb(3, 1.0, 8.0);
    const TimePoint t0{};
    cb.record_rate_limited(t0);
    cb.record_rate_limited(t0);
    EXPECT_EQ(cb.state(t0), State::closed);
    cb.record_rate_limited(t0);
    EXPECT_EQ(cb.state(t0), State::open);
    EXPECT_EQ(cb.times_opened(), 1);
}

TEST(CircuitBreaker, SuccessResetsTheCount) {
    CircuitBreaker cb(3, 1.0, 8.0);
    const TimePoint t0{};
    cb.record_rate_limited(t0);
    cb.record_rate_limited(t0);
    cb.record_success();
    cb.record_rate_limited(t0);
    cb.record_rate_limited(t0);
    EXPECT_EQ(cb.state(t0), State::closed);
}

TEST(CircuitBreaker, HalfOpenAfterCooldownThenProbeDecides) {
    CircuitBreaker cb(1, 1.0, 8.0);
    const TimePoint t0{};
    cb.record_rate_limited(t0);
    EXPECT_EQ(cb.state(t0 + milliseconds(999)), State::open);
    EXPECT_EQ(cb.state(t0 + milliseconds(1000)), State::half_open);
    cb.record_success();
    EXPECT_EQ(cb.state(t0 + milliseconds(1000)), State::closed);
}

TEST(CircuitBreaker, FailedProbesDoubleTheCooldownUpToTheCeiling) {
    CircuitBreaker cb(1, 1.0, 4.0);
    TimePoint t{};
    cb.record_rate_limited(t);
    const double expected[] = {2, 4, 4, 4};
    for (double cooldown : expected) {
        t = cb.open_until();
        ASSERT_EQ(cb.state(t), State::half_open);
        cb.record_rate_limited(t);  // the probe failed
        EXPECT_DOUBLE_EQ(cb.current_cooldown_seconds(), cooldown);
        EXPECT_EQ(cb.state(t + milliseconds(static_cast<int>(cooldown * 1000) - 1)), State::open);
    }
    EXPECT_EQ(cb.times_opened(), 5);
    cb.record_success();
    EXPECT_DOUBLE_EQ(cb.current_cooldown_seconds(), 1.0);
}

TEST(CircuitBreaker, RetryAfterLengthensTheCooldown) {
    CircuitBreaker cb(1, 1.0, 4.0);
    const TimePoint t0{};
    cb.record_rate_limited(t0, 30);
    EXPECT_EQ(cb.state(t0 + std::chrono::seconds(29)), State::open);
    EXPECT_EQ(cb.state(t0 + std::chrono::seconds(30)), State::half_open);
}

TEST(CircuitBreaker, LateFailuresWhileOpenDoNotReopen) {
    CircuitBreaker cb(1, 1.0, 4.0);
    const TimePoint t0{};
    cb.record_rate_limited(t0);
    cb.record_rate_limited(t0 + milliseconds(10));  // a call that started before the opening
    EXPECT_EQ(cb.times_opened(), 1);
    EXPECT_EQ(cb.state(t0 + milliseconds(1000)), State::half_open);
}

}  // namespace
}  // namespace execguard::runner
