# smsys build. Everything is discovered by directory, so adding a module,
# a program or a test never needs an edit here:
#   src/*.c, connectors/*.c     -> libsmsys.a (the core + connectors)
#   src/smsysd/*.c              -> bin/smsysd
#   tools/<prog>/*.c            -> bin/<prog>       (smsysctl, dvemu, smscsim, ...)
#   test/lib/*.c                -> libsmsystest.a   (test helpers)
#   test/unit/test_*.c          -> test/unit/test_* (one binary per file)
#   test/integration/test_*.c   -> test/integration/test_*
#   test/fuzz/fuzz_*.c          -> fuzz/fuzz_*      (make fuzz, clang + libFuzzer)
# SANITIZE=1 builds ASan+UBSan into build/san instead of build/.

CC        ?= cc
PKGS      := libuv libcurl libpq libcjson openssl cmocka libsmpp34
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN      := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wformat=2 -Werror \
             -Wno-unused-parameter -Wmissing-prototypes -Wvla
CFLAGS    ?= -O2 -g
CPPFLAGS  += -Iinclude -Isrc -Itest/lib -D_GNU_SOURCE $(PKG_CFLAGS)
ALL_CFLAGS = -std=c11 $(WARN) $(CFLAGS) -MMD -MP
LDLIBS    += $(PKG_LIBS) -lhttp_parser -lm -lpthread

ifeq ($(SANITIZE),1)
BUILD     ?= build/san
ALL_CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDFLAGS   += -fsanitize=address,undefined
else
BUILD     ?= build
endif

LIB_SRC   := $(wildcard src/*.c) $(wildcard connectors/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB       := $(BUILD)/libsmsys.a

PROGS     := smsysd $(notdir $(patsubst %/,%,$(dir $(wildcard tools/*/*.c))))
PROGS     := $(sort $(PROGS))
BINS      := $(PROGS:%=$(BUILD)/bin/%)

TLIB_SRC  := $(wildcard test/lib/*.c)
TLIB_OBJ  := $(TLIB_SRC:%.c=$(BUILD)/obj/%.o)
TLIB      := $(BUILD)/libsmsystest.a
TEST_SRC  := $(wildcard test/unit/test_*.c test/integration/test_*.c)
TESTS     := $(TEST_SRC:%.c=$(BUILD)/%)

.PHONY: all tests check bench demo clean format format-check fuzz fuzz-smoke deps pg-start pg-stop
.DEFAULT_GOAL := all

all: $(BINS)

tests: $(BINS) $(TESTS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^

$(TLIB): $(TLIB_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^ $(if $(TLIB_OBJ),,)

# Each program is every .c in its directory linked against the core.
.SECONDARY:
.SECONDEXPANSION:
$(BUILD)/bin/smsysd: $$(patsubst %.c,$(BUILD)/obj/%.o,$$(wildcard src/smsysd/*.c)) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/%: $$(addprefix $(BUILD)/obj/,$$(subst .c,.o,$$(wildcard tools/$$*/*.c))) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test/%: $(BUILD)/obj/test/%.o $(TLIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TLIB) $(LIB) $(LDLIBS)

# The full suite: plain build, then ASan+UBSan build, against a private
# PostgreSQL (or $SMSYS_TEST_PG). Ends with "N passed, M failed".
check:
	@tools/install-deps
	@tools/run-tests

bench: all
	@tools/install-deps
	@bench/run

demo:
	@tools/install-deps
	@$(MAKE) --no-print-directory all
	@tools/demo

deps:
	@tools/install-deps

pg-start:
	@tools/pg-local start
pg-stop:
	@tools/pg-local stop

FUZZ_SRC := $(wildcard test/fuzz/fuzz_*.c)
fuzz:
	@$(MAKE) --no-print-directory CC=clang BUILD=build/fuzz \
	    CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined" build/fuzz/libsmsys.a
	@mkdir -p build/fuzz/bin
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	    echo "  FUZZ $$n"; \
	    clang $(CPPFLAGS) -std=c11 -O1 -g -fsanitize=fuzzer,address,undefined $$f \
	      build/fuzz/libsmsys.a $(LDLIBS) -o build/fuzz/bin/$$n || exit 1; done

# Every target for FUZZ_SECONDS each from an empty corpus: keeps the targets
# building and catches shallow crashes; long runs are done by hand.
FUZZ_SECONDS ?= 10
fuzz-smoke: fuzz
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	    printf '  %-22s ' $$n; \
	    build/fuzz/bin/$$n -max_total_time=$(FUZZ_SECONDS) -seed=1 \
	      -artifact_prefix=build/fuzz/$$n- >build/fuzz/$$n.log 2>&1 \
	      || { echo FAILED; tail -n 40 build/fuzz/$$n.log; exit 1; }; \
	    grep -o 'Done [0-9]* runs' build/fuzz/$$n.log || echo; done

FORMAT_FILES = $(shell git ls-files --cached --others --exclude-standard '*.c' '*.h' 2>/dev/null)
format:
	@clang-format -i $(FORMAT_FILES)
format-check:
	@clang-format --dry-run --Werror $(FORMAT_FILES) && echo "format ok"

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
