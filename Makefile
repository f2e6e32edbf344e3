# altair — the two commands a new user needs are `make demo` and `make test`.
CARGO       ?= cargo
SANDBOX_DIR ?= target/sandbox
SANDBOX     := target/debug/altair-sandbox --dir $(SANDBOX_DIR)
# A hung test fails the run with a clear message instead of eating CI's 90 minutes.
TEST_TIMEOUT ?= 3000

.PHONY: all deps build lint fmt test unit bench chaos soak sandbox sandbox-down sandbox-status demo clean

all: build

## deps: install missing OS packages (MariaDB, ZooKeeper, BIND, iproute2, nftables)
deps:
	@bash deploy/dev/install-deps.sh

## build: every binary of the workspace (debug)
build:
	$(CARGO) build --workspace --bins

## lint: rustfmt check and clippy with warnings as errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## fmt: format the code
fmt:
	$(CARGO) fmt --all

## test: install deps, lint, build, then every test (unit, real-component, end-to-end).
##       Built with the `ci` profile: optimized like a release (the binaries under test
##       are the ones operators run, and timing bounds do not measure debug-build
##       overhead), with debug assertions and overflow checks kept on.
TEST_PROFILE ?= ci
test: deps lint
	$(CARGO) build --profile $(TEST_PROFILE) --workspace --bins
	timeout --foreground $(TEST_TIMEOUT) $(CARGO) test --profile $(TEST_PROFILE) --workspace --no-fail-fast

## unit: only the fast pure tests (altair-core)
unit:
	$(CARGO) test -p altair-core

## chaos: the randomized fault run, ROUNDS rounds (SEED= replays a run; `make test` runs 3)
ROUNDS ?= 100
SEED   ?=
chaos: deps build
	ALTAIR_CHAOS_ROUNDS=$(ROUNDS) $(if $(SEED),ALTAIR_CHAOS_SEED=$(SEED)) \
	  $(CARGO) test -p altair-e2e --test chaos -- --nocapture

## soak: the chaos run as a soak (issue 16): ROUNDS rounds (default 1000) of every fault
##       under WRITERS concurrent writers (default 4), ending with a table by fault
WRITERS ?= 4
soak: ROUNDS = 1000
soak: deps
	$(CARGO) build --profile $(TEST_PROFILE) --workspace --bins
	ALTAIR_CHAOS_ROUNDS=$(ROUNDS) ALTAIR_CHAOS_WRITERS=$(WRITERS) $(if $(SEED),ALTAIR_CHAOS_SEED=$(SEED)) \
	  $(CARGO) test --profile $(TEST_PROFILE) -p altair-e2e --test chaos -- --nocapture

## bench: benchmarks, figures printed as tables (release build)
bench: deps
	$(CARGO) build --release --workspace --bins
	$(CARGO) bench --workspace

## sandbox: start the local sandbox in the background (described in target/sandbox/sandbox.json);
##          DURABILITY=semi_sync runs its clusters semi-synchronously, CLUSTERS=N runs N clusters
DURABILITY ?= async
CLUSTERS   ?= 1
sandbox: deps build
	$(SANDBOX) up --durability $(DURABILITY) --clusters $(CLUSTERS)

## sandbox-status: print what every host of the sandbox says
sandbox-status:
	$(SANDBOX) status

## sandbox-down: stop the sandbox; no process, namespace or temp dir is left
sandbox-down:
	@if [ -x target/debug/altair-sandbox ]; then $(SANDBOX) down; else echo "no sandbox binary built"; fi

CTL := target/debug/altairctl --config $(SANDBOX_DIR)/altairctl.toml

## demo: build, bring up the sandbox, kill the primary's mysqld, show the failover, tear down
demo: deps build
	$(SANDBOX) up
	@{ $(SANDBOX) demo && \
	   echo && echo "== altairctl status" && $(CTL) status && \
	   echo && echo "== kill -9 the mysqld of the primary, db1 (its host stays up)" && $(SANDBOX) kill-mysqld db1 && \
	   $(SANDBOX) wait-failover && \
	   echo && echo "== altairctl history c1: the failover report" && $(CTL) history c1 && \
	   sleep 1 && echo && echo "== altairctl status" && $(CTL) status && \
	   echo && echo "== write through the DNS name again" && $(SANDBOX) demo; }; \
	 rc=$$?; $(SANDBOX) down; \
	 echo "the services' logs of this run: $(SANDBOX_DIR)/logs/ (agents, monitor, orchestrators)"; exit $$rc

clean: sandbox-down
	$(CARGO) clean
