// test/unit/runner/hint_gate_test.cpp: the gate that turns notifications
// (hints any role can send) into at most one action per spacing, driven
// with explicit time points (no sleeping).
#include <gtest/gtest.h>

#include "hint_gate.h"

namespace execguard::runner {
namespace {

using std::chrono::milliseconds;

TEST(HintGate, NothingToDoWithoutAHint) {
    HintGate gate(0.1);
    EXPECT_FALSE(gate.pending());
    EXPECT_FALSE(gate.take(TimePoint{} + milliseconds(5000)));
}

TEST(HintGate, TheFirstHintIsActedOnAtOnce) {
    HintGate gate(0.1);
    const TimePoint t0 = TimePoint{} + milliseconds(5000);
    gate.hint();
    EXPECT_TRUE(gate.take(t0));
    EXPECT_FALSE(gate.pending());
    EXPECT_FALSE(gate.take(t0));  // taken once
}

TEST(HintGate, AFloodWithinTheSpacingCostsOneMoreActionWhenItHasPassed) {
    HintGate gate(0.1);
    const TimePoint t0 = TimePoint{} + milliseconds(5000);
    gate.hint();
    ASSERT_TRUE(gate.take(t0));
    for (int i = 0; i < 1000; ++i) gate.hint();
    EXPECT_TRUE(gate.pending());
    EXPECT_EQ(gate.due(), t0 + milliseconds(100));
    EXPECT_FALSE(gate.take(t0 + milliseconds(99)));
    EXPECT_TRUE(gate.pending());  // remembered, not lost
    EXPECT_TRUE(gate.take(t0 + milliseconds(100)));
    EXPECT_FALSE(gate.take(t0 + milliseconds(100)));
}

TEST(HintGate, ActionsUnderASustainedFloodAreBoundedByTheSpacing) {
    HintGate gate(0.1);
    const TimePoint t0 = TimePoint{} + milliseconds(5000);
    int actions = 0;
    // A hint every millisecond for ten seconds, and a look every millisecond.
    for (int ms = 0; ms < 10000; ++ms) {
        gate.hint();
        if (gate.take(t0 + milliseconds(ms))) ++actions;
    }
    EXPECT_EQ(actions, 100);
}

TEST(HintGate, ADroppedHintDoesNotDelayTheNextOne) {
    HintGate gate(0.1);
    const TimePoint t0 = TimePoint{} + milliseconds(5000);
    gate.hint();
    gate.drop();
    EXPECT_FALSE(gate.pending());
    gate.hint();
    EXPECT_TRUE(gate.take(t0));
}

}  // namespace
}  // namespace execguard::runner
