// extension/include/execguard/core/interrupt.hpp
//
// Query cancel for the core. The core cannot call CHECK_FOR_INTERRUPTS (it
// never sees PostgreSQL headers, and a longjmp must not cross its frames),
// so the adapter hands it a callback (eg_set_interrupt_check in
// execguard/bridge.h) that only reads whether an interrupt is pending.
// Every loop over input calls poll_interrupt(); every kPollEvery calls it
// asks the callback, and when that says stop it throws Interrupted, which
// unwinds the core normally (destructors run) and becomes EG_INTERRUPTED at
// the bridge. The adapter then calls CHECK_FOR_INTERRUPTS(), which raises
// the error PostgreSQL would have raised (57014, or FATAL on terminate).
#pragma once

#include "execguard/core/guard.hpp"

#include <exception>

namespace execguard::core {

// A few thousand iterations of the cheapest loop (a short region name) take
// microseconds; of the dearest (a 1 MB prompt checked for UTF-8) well under
// a second in total, since the input as a whole is at most 1 GB.
inline constexpr unsigned kPollEvery = 1024;

class Interrupted : public std::exception {
public:
    const char* what() const noexcept override { return "interrupted"; }
};

using InterruptCheck = int (*)();

namespace detail {
inline InterruptCheck interrupt_check = nullptr;
inline unsigned interrupt_countdown = kPollEvery;
void poll_interrupt_now();
}  // namespace detail

// The callback; nullptr (the default, outside the server) never stops.
void set_interrupt_check(InterruptCheck check) noexcept;

// Cheap enough for every iteration of every loop over input.
inline void poll_interrupt() {
    if (--detail::interrupt_countdown == 0) {
        detail::poll_interrupt_now();
    }
}

}  // namespace execguard::core
