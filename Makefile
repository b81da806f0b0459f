# Makefile: PGXS build of the execguard extension and its SQL-level tests.
#
#   make                  build extension/execguard.so
#   make install          install it into the server found by PG_CONFIG
#   make installcheck     pg_regress (sql/ + expected/) and isolation specs
#                         (test/isolation/specs/, expected output in expected/)
#                         against the server in PGHOST/PGPORT, which must
#                         preload the library (shared_preload_libraries)
#
# The runner and the C++ unit tests are built by CMakeLists.txt.

EXTENSION_NAME = execguard
EXTVERSION = 0.6.0

MODULE_big = execguard
# extension/core: plain C++17, never sees a PostgreSQL header.
# extension/pg:   the only code that includes PostgreSQL headers.
CORE_OBJS = $(patsubst %.cpp,%.o,$(sort $(wildcard extension/core/*.cpp)))
PG_OBJS = \
	extension/pg/module.o \
	extension/pg/normalize_models.o \
	extension/pg/submit_job.o \
	extension/pg/claim_execution.o \
	extension/pg/claim_next.o \
	extension/pg/fenced_writes.o \
	extension/pg/job_operations.o \
	extension/pg/retention.o \
	extension/pg/arguments.o \
	extension/pg/grant.o \
	extension/pg/key_lookup.o \
	extension/pg/executions_table.o \
	extension/pg/writer.o \
	extension/pg/queue_rows.o \
	extension/pg/owner.o \
	extension/pg/spi_plans.o \
	extension/pg/no_jit.o \
	extension/pg/core_call.o \
	extension/pg/stats.o
OBJS = $(CORE_OBJS) $(PG_OBJS)

# The control file and install script live in extension/; without
# EXTENSION set, PGXS installs DATA into MODULEDIR below share/.
MODULEDIR = extension
DATA = extension/execguard.control $(wildcard extension/execguard--*.sql)

PG_CPPFLAGS = -Iextension/include -DEG_EXTVERSION='"$(EXTVERSION)"'
# -isystem for the server headers would be nicer, but PGXS puts them in
# CPPFLAGS itself; -Wno-register silences C++17 about their 'register'.
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror -Wno-register -Wno-unused-parameter
# Each object records the headers it read, next to it (extension/pg/claims.d,
# ...), so a changed header rebuilds what includes it. PGXS's own tracking
# (autodepend) is on only for a server built with --enable-depend, which
# Debian's is not, and names its files by basename in one .deps folder.
PG_CXXFLAGS += -MMD -MP
EXTRA_CLEAN = $(OBJS:.o=.d)
SHLIB_LINK = -lstdc++

# Debian's server is built --with-llvm, so PGXS would also compile every .cpp
# to bitcode with clang for JIT inlining, and that step ignores PG_CXXFLAGS.
# The bitcode would buy nothing: the JIT inlines operators and functions
# used inside expressions, while execguard's work is SPI statements and
# JSON handling. So the bitcode step is turned off deliberately; 'override'
# is needed because a plain assignment is overwritten by Makefile.global.
override with_llvm = no

REGRESS = \
	normalize_models \
	normalize_models_errors \
	submit_job \
	claim_execution \
	claim_lifecycle \
	claim_next \
	index_use \
	counters \
	roles \
	direct_writes \
	no_jit \
	strict_claims \
	retention \
	hardening \
	schema_owner \
	big_inputs \
	upgrade
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION_NAME)

# Isolation specs live in test/isolation/specs/; pg_isolation_regress looks
# for specs below --outputdir first and for expected output below
# --inputdir, which keeps all expected files together in expected/.
ISOLATION_SPECS = \
	isolation_claim_vs_claim \
	isolation_claim_vs_cancel \
	isolation_complete_vs_reclaim \
	isolation_claim_next_vs_claim_next \
	isolation_terminate_vs_reclaim \
	isolation_claim_next_busy_vs_claim_next

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

pg_isolation_regress = $(dir $(PGXS))../../src/test/isolation/pg_isolation_regress

-include $(OBJS:.o=.d)

.PHONY: isolationcheck
isolationcheck:
	PGISOLATIONTIMEOUT=$${PGISOLATIONTIMEOUT:-20} \
	$(pg_isolation_regress) --inputdir=. --outputdir=test/isolation \
		--bindir='$(bindir)' --load-extension=$(EXTENSION_NAME) \
		--dbname=execguard_isolation $(ISOLATION_SPECS)

# Compiles the objects only: for a compile check against the headers of a
# server that cannot be linked against or run here.
.PHONY: objects
objects: $(OBJS)

# "make installcheck" runs both; the test command runs them separately
# (SKIP_ISOLATION=1) so that a failure in one does not hide the other.
ifneq ($(SKIP_ISOLATION),1)
installcheck: isolationcheck
endif

# Core object files must not see PostgreSQL's include paths at all.
$(CORE_OBJS): CPPFLAGS = -Iextension/include
$(CORE_OBJS): override CXXFLAGS := -O2 -g -fPIC $(PG_CXXFLAGS)

clean: clean-tests
.PHONY: clean-tests
clean-tests:
	rm -rf results regression.diffs regression.out test/isolation/results \
		test/isolation/regression.diffs test/isolation/regression.out
