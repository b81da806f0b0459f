// extension/include/execguard/core/guard.hpp
//
// Included first by every header of the PostgreSQL-free core. The core is
// unit-tested and fuzzed outside the server and throws C++ exceptions, so it
// must never be compiled next to PostgreSQL headers (whose elog longjmps
// would skip its destructors, and whose port.h redefines printf and
// friends). Fail the build if that ever happens.
#pragma once

#if defined(POSTGRES_H) || defined(PG_VERSION_NUM)
#error "execguard core headers must not be included together with PostgreSQL headers; go through execguard/bridge.h"
#endif
