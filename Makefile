# ferry — the front door. Everything real happens in meson/ninja; this file
# installs what a fresh Debian 12 machine lacks and names the common jobs.

BUILD      ?= build
ASAN_BUILD ?= build-asan
MESON      ?= meson
NINJA      ?= ninja

.PHONY: all deps guest demo check unit asan kvm-tests e2e linux-smoke bench clean

all: deps $(BUILD)/build.ninja
	$(NINJA) -C $(BUILD)

deps:
	@scripts/setup.sh

$(BUILD)/build.ninja:
	$(MESON) setup $(BUILD) --buildtype=debugoptimized

$(ASAN_BUILD)/build.ninja:
	$(MESON) setup $(ASAN_BUILD) --buildtype=debug -Db_sanitize=address,undefined \
		-Db_lundef=false -Dguest=false

guest: all
	$(NINJA) -C $(BUILD) guest/ferry-guest.elf

# Boot the test guest with 2 vCPUs and show its heartbeat for a few seconds.
demo: all
	@python3 scripts/demo.py $(BUILD)

# Unit tests (normal + ASan/UBSan), KVM payload tests, end-to-end tests,
# and the Linux smoke test.
# Each meson test run may fail; the summary line decides, after both ran.
check: all $(ASAN_BUILD)/build.ninja
	$(NINJA) -C $(ASAN_BUILD)
	scripts/fetch-linux.sh $(BUILD)/linux
	-$(MESON) test -C $(ASAN_BUILD) --suite unit --print-errorlogs
	-$(MESON) test -C $(BUILD) --print-errorlogs --num-processes 1
	@scripts/test-summary.py $(ASAN_BUILD) $(BUILD)

bench: all
	bench/boot.sh $(BUILD)
	python3 bench/snapshot.py $(BUILD)
	python3 bench/migrate.py $(BUILD)
	python3 bench/disk.py $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
