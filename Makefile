# ferry — the front door. Everything real happens in meson/ninja; this file
# installs what a fresh Debian 12 machine lacks and names the common jobs.

BUILD      ?= build
ASAN_BUILD ?= build-asan
MESON      ?= meson
NINJA      ?= ninja
# Debian's (scripts/setup.sh installs it), not a version manager's shim.
PYTHON     ?= $(firstword $(wildcard /usr/bin/python3) python3)

.PHONY: all deps guest demo check bench clean

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

# Where /dev/kvm is: this machine when it has a usable one, otherwise the
# test host (tests/host/run: Debian's kernel under QEMU TCG with emulated
# SVM, docs/testing.md). TESTHOST_TIMEOUT ends a run that hangs.
KVMRUN           = tests/host/run
TESTHOST_TIMEOUT ?= 3000
# meson's per-test time limits, stretched where everything is emulated
# (no /dev/kvm here, or FERRY_TESTHOST=always).
KVM_TIMEOUT_MULT ?= $(if $(filter always,$(FERRY_TESTHOST)),3,$(if $(wildcard /dev/kvm),1,3))
# kvm_pvm runs ferry's tests but cannot run an unmodified Linux: on such a
# machine the tests that boot one (meson suite linux-vm) run in the test
# host, in a run of their own (log linux.json), instead of saying SKIP.
LINUX_VM_IN_TESTHOST := $(if $(filter always never,$(FERRY_TESTHOST)),,$(wildcard /sys/module/kvm_pvm))

# Two ferryd hosts, a Linux VM (Debian's kernel, our agent) migrated live
# from one to the other and back, with progress, domjobinfo and the
# heartbeat; in the test host on kvm_pvm, which cannot run Linux.
demo: all
	@$(if $(LINUX_VM_IN_TESTHOST),FERRY_TESTHOST=always )$(KVMRUN) --timeout $(TESTHOST_TIMEOUT) \
		$(PYTHON) scripts/demo.py $(BUILD)

# Unit tests (normal + ASan/UBSan) on this machine; KVM payload tests,
# end-to-end tests, the QEMU cross-checks and the Linux smoke test where
# /dev/kvm is. Each meson test run may fail; the summary line decides, after
# all ran, from their logs: three, four with the linux-vm run (linux.json)
# on a kvm_pvm machine (a run that left none counts as failed).
check: all $(ASAN_BUILD)/build.ninja
	$(NINJA) -C $(ASAN_BUILD)
	scripts/fetch-linux.sh $(BUILD)/linux
	tests/host/build.sh $(BUILD)/testhost
	@rm -f $(ASAN_BUILD)/meson-logs/unit.json $(BUILD)/meson-logs/unit.json \
		$(BUILD)/meson-logs/kvm.json $(BUILD)/meson-logs/linux.json
	-$(MESON) test -C $(ASAN_BUILD) --suite unit --print-errorlogs --logbase unit
	-$(MESON) test -C $(BUILD) --suite unit --print-errorlogs --logbase unit
	-$(KVMRUN) --timeout $(TESTHOST_TIMEOUT) $(MESON) test -C $(BUILD) --no-rebuild \
		--no-suite unit $(if $(LINUX_VM_IN_TESTHOST),--no-suite linux-vm) \
		--print-errorlogs --num-processes 1 --logbase kvm \
		--timeout-multiplier $(KVM_TIMEOUT_MULT)
	$(if $(LINUX_VM_IN_TESTHOST),-FERRY_TESTHOST=always $(KVMRUN) --timeout $(TESTHOST_TIMEOUT) \
		$(MESON) test -C $(BUILD) --no-rebuild --suite linux-vm --print-errorlogs \
		--num-processes 1 --logbase linux --timeout-multiplier 3)
	@scripts/test-summary.py $(ASAN_BUILD)/meson-logs/unit.json \
		$(BUILD)/meson-logs/unit.json $(BUILD)/meson-logs/kvm.json \
		$(if $(LINUX_VM_IN_TESTHOST),$(BUILD)/meson-logs/linux.json)

# Boot, save/restore, live migration and disk I/O, ferry and QEMU side by
# side in one run, where /dev/kvm is.
bench: all
	@$(KVMRUN) --timeout $(TESTHOST_TIMEOUT) bench/all.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
