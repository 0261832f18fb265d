# pve-microseg — build, install, test, demo.
#
#   make demo    boot a real kernel under QEMU, simulate a two-node cluster and
#                show who can reach whom before and after pve-microseg
#                (Debian 12 / PVE 8; RELEASE=trixie for Debian 13 / PVE 9)
#   make check   run every test tier (unit, package, dataplane) on both
#                supported releases: Debian 12 (PVE 8) and Debian 13 (PVE 9)
#   make deb     build dist/pve-microseg_<version>_all.deb
#
# Both `demo` and `check` install the Debian packages they need first.

PYTHON    ?= /usr/bin/python3
DESTDIR   ?=
PREFIX    ?= /usr
PYLIBDIR  ?= $(PREFIX)/lib/python3/dist-packages
VERSION   := $(shell dpkg-parsechangelog -S Version 2>/dev/null || sed -n '1s/.*(\(.*\)).*/\1/p' debian/changelog)
DEB       := dist/pve-microseg_$(VERSION)_all.deb

# Debian packages the tests and the demo need (on a fresh Debian 12 machine).
TEST_DEPS := nftables python3-nftables python3-yaml python3-pytest python3-hypothesis \
             python3-debian qemu-system-x86 busybox-static kmod cpio iproute2 \
             iputils-ping debhelper dh-python dpkg-dev fakeroot lintian \
             debootstrap xz-utils zstd graphviz

# Debian 13 (PVE 9) runs from a root file system built once with debootstrap
# and cached (tests/guest/run-trixie-guest.sh): in a chroot on this kernel for
# the host tiers, under QEMU with Debian 13's kernel for the dataplane.
RUN_TRIXIE := tests/guest/run-trixie-guest.sh
RELEASE   ?= bookworm
UNIT_TRIXIE := TRIXIE_CHROOT=1 $(RUN_TRIXIE) '/usr/bin/python3 -m pytest -q -p no:cacheprovider tests --ignore=tests/dataplane'

.PHONY: all deps promtool check unit unit-trixie dataplane demo deb install clean bench golden

all: deb

deps:
	@missing=$$(for p in $(TEST_DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

# promtool (for `promtool check metrics` in tests/test_metrics.py) from
# Debian's prometheus package, extracted into build/promtool without
# installing the server; the Debian 13 chroot sees it there too (the
# working directory is shared with it).
promtool: deps
	tests/tools/get-promtool.sh build/promtool

install:
	cd lib && find pve_microseg -name '*.py' -exec install -D -m 0644 {} $(DESTDIR)$(PYLIBDIR)/{} \;
	install -D -m 0755 bin/pve-microseg $(DESTDIR)/usr/sbin/pve-microseg
	install -D -m 0755 ifupdown/if-up.d/pve-microseg $(DESTDIR)/etc/network/if-up.d/pve-microseg
	install -D -m 0755 ifupdown/if-down.d/pve-microseg $(DESTDIR)/etc/network/if-down.d/pve-microseg
	install -D -m 0755 hookscripts/pve-microseg-hookscript $(DESTDIR)/usr/share/pve-microseg/pve-microseg-hookscript
	install -D -m 0644 bash-completion/pve-microseg $(DESTDIR)/usr/share/bash-completion/completions/pve-microseg

deb: $(DEB)

# The list of packaged files is a prerequisite too: a file added to git
# since the last build (older than the .deb) must not be left out.
PKG_FILES := $(wildcard $(shell git ls-files 2>/dev/null | grep -v '^tests/\|^bench/'))
FILE_LIST := $(shell mkdir -p build && echo $(PKG_FILES) > build/files.new && \
               { cmp -s build/files.new build/files || mv build/files.new build/files; } && echo build/files)

$(DEB): $(PKG_FILES) $(FILE_LIST)
	rm -rf build/pkg && mkdir -p build/pkg/src dist
	git ls-files -z | grep -zv '^tests/\|^bench/' | xargs -0 cp --parents -t build/pkg/src
	cd build/pkg/src && dpkg-buildpackage -us -uc -b -rfakeroot >../build.log 2>&1 || { tail -40 ../build.log; exit 1; }
	mv build/pkg/*.deb dist/

unit: deps promtool
	$(PYTHON) -m pytest -q tests --ignore=tests/dataplane

# the host tiers (unit, simulator, package: build + lintian) under Debian 13's
# Python 3.13, debhelper and lintian; lintian also checks the .deb built here
unit-trixie: deps promtool deb
	$(UNIT_TRIXIE)

# DATAPLANE_RELEASES=bookworm or =trixie for one release (CI always runs both)
dataplane: deps deb
	$(PYTHON) -m pytest -q tests/dataplane

# Debian 12: every tier, then Debian 13's host tiers (its dataplane ran in the first)
check: deps promtool deb
	$(PYTHON) -m pytest tests
	@echo "== host tiers under Debian 13 (trixie chroot) =="
	$(UNIT_TRIXIE)

demo: deps deb
	DEMO_RELEASE=$(RELEASE) $(PYTHON) -m tests.dataplane.demo

# after a deliberate change to the rules: rewrite tests/golden/*.nft, then review `git diff tests/golden`
golden:
	cd tests && PYTHONPATH=../lib $(PYTHON) -m golden

bench: deps deb
	$(PYTHON) bench/run.py

clean:
	rm -rf build dist .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
