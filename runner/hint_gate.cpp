// runner/hint_gate.cpp
#include "hint_gate.h"

namespace execguard::runner {

bool HintGate::take(TimePoint now) {
    if (!pending_ || now < next_allowed_) return false;
    pending_ = false;
    next_allowed_ = now + spacing_;
    return true;
}

}  // namespace execguard::runner
