// extension/core/interrupt.cpp
//
// See interrupt.hpp.
#include "execguard/core/interrupt.hpp"

namespace execguard::core {

void set_interrupt_check(InterruptCheck check) noexcept {
    detail::interrupt_check = check;
    detail::interrupt_countdown = kPollEvery;
}

void detail::poll_interrupt_now() {
    interrupt_countdown = kPollEvery;
    if (interrupt_check != nullptr && interrupt_check() != 0) {
        throw Interrupted();
    }
}

}  // namespace execguard::core
