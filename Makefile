# hasupd: `make demo` shows a failover, `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
STAMP := $(VENV)/.installed

.PHONY: deps venv test test-fast test-matrix test-vm test-vm-campaign test-partitions demo lint packages bench bench-quick clean lab-down

deps:
	@scripts/deps.sh scripts/apt-packages.txt

$(STAMP): pyproject.toml lab/pyproject.toml scripts/apt-packages.txt
	@scripts/deps.sh scripts/apt-packages.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test,systemd]' -e ./lab
	@touch $(STAMP)

venv: $(STAMP)

# Workers of pytest-xdist: the lab tests mostly wait on timers (deadtime,
# soak windows), so several labs side by side cost little CPU; a lab test goes
# to any free worker, other tests stay with their file (tests/conftest.py).
TEST_WORKERS ?= 4
test: $(STAMP)
	@$(PY) -m ruff check hasupd lab tests bench
	@$(PYTEST) -q -n $(TEST_WORKERS) --dist loadgroup

test-fast: $(STAMP)
	@$(PYTEST) -q -m 'not lab and not slow'

# Each distribution's Python (pyenv) with exactly its own library versions:
# unit/scenario/property tests + one lab failover per row (scripts/test-matrix.py).
test-matrix: $(STAMP)
	@python3 scripts/test-matrix.py $(ROWS)

# The failure matrix (issue 17): every fault x every split-brain guard in the
# lab (9 to 14 minutes here); writes bench/results/matrix.json and the README's table.
test-partitions: $(STAMP)
	@PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) bench/matrix.py --readme

lint: $(STAMP)
	@$(PY) -m ruff check hasupd lab tests bench

clean:
	rm -rf $(VENV) build dist *.egg-info lab/*.egg-info

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

man: $(STAMP)
	@$(PY) scripts/gen-man.py

# Both packages from the tracked files only (what a clean clone has), with
# the distribution's own python3 and tools (not a pyenv/venv one on PATH).
PKG_ENV := env PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8
packages:
	@scripts/deps.sh scripts/apt-packages-build.txt
	@scripts/check-programs build
	@rm -rf build/pkg dist && mkdir -p build/pkg/hasupd-$(VERSION) dist
	@git ls-files -z | tar --null -T - -cf - | tar -xf - -C build/pkg/hasupd-$(VERSION)
	@tar -czf dist/hasupd-$(VERSION).tar.gz -C build/pkg hasupd-$(VERSION)
	@cd build/pkg/hasupd-$(VERSION) && $(PKG_ENV) dpkg-buildpackage -us -uc -b > ../deb-build.log 2>&1 \
	    || { tail -30 ../deb-build.log; exit 1; }
	@cp build/pkg/hasupd_$(VERSION)_all.deb dist/
	@$(PKG_ENV) rpmbuild -bb --nodeps --define "_topdir $(CURDIR)/build/rpm" \
	    --define "_sourcedir $(CURDIR)/dist" rpm/hasupd.spec > build/pkg/rpm-build.log 2>&1 \
	    || { tail -30 build/pkg/rpm-build.log; exit 1; }
	@cp build/rpm/RPMS/noarch/hasupd-$(VERSION)-*.noarch.rpm dist/
	@ls dist/

demo: $(STAMP)
	@PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m hasupd_lab.demo

lab-down: $(STAMP)
	@PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m hasupd_lab.cli --prefix $${HASUPD_LAB_PREFIX:-demo} down

# Real DRBD end to end: two qemu VMs (software emulation) with the installed
# .deb; the image is cached in $HASUPD_VM_CACHE (default /var/cache/hasupd-vm).
test-vm: packages
	@scripts/deps.sh scripts/apt-packages-vm.txt
	@scripts/check-programs vm
	@python3 tests/vm/e2e.py --deb dist/hasupd_$(VERSION)_all.deb

# The same VMs with BMCs and the drbd guard: an acknowledged-write client
# through 21 faults, live partitions included (tests/vm/campaign.py).
test-vm-campaign: packages
	@scripts/deps.sh scripts/apt-packages-vm.txt
	@scripts/check-programs vm
	@python3 tests/vm/campaign.py --deb dist/hasupd_$(VERSION)_all.deb

# Benchmarks (issues 9, 22), as root: failover time per scenario (failover.json;
# the fencing rows, power cut / hung owner / live partition with guard fence, in
# failover-fencing.json), footprint, the peers (Pacemaker without and with
# fencing, keepalived), chaos; then bench/report.py turns bench/results/*.json
# into report.md + plots and the README's performance table (--readme).
# `make bench` takes about 45 minutes here (failover ~7, peers ~17, chaos ~14); `bench-quick` runs each with --quick
# (no peers; well under 10 minutes).
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	@$(PY) -c 'import matplotlib' 2>/dev/null || $(PY) -m pip install -q --disable-pip-version-check -e '.[bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	@PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) bench/failover.py --runs 5
	@PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) bench/footprint.py
	@PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) bench/peers/run.py || echo "bench/peers/run.py failed: the report shows the last peers.json"
	@PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) bench/chaos.py --runs 50 --seed 1; rc=$$?; $(PY) bench/report.py --readme; exit $$rc

bench-quick: $(BENCH_STAMP)
	@PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) bench/failover.py --quick
	@PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) bench/footprint.py --quick
	@PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) bench/chaos.py --quick --seed 1; rc=$$?; $(PY) bench/report.py --readme; exit $$rc

# hasupd's peers alone (Pacemaker + corosync without and with fencing, keepalived) in
# the same kind of lab: bench/results/peers.json.  `make bench-peers PEERS_ARGS=--quick`
# for the short run, PEERS_ARGS="--only pacemaker_fence" for one peer.
bench-peers: $(BENCH_STAMP)
	@PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) bench/peers/run.py $(PEERS_ARGS)
	@$(PY) bench/report.py --readme
