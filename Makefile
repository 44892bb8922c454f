# The two commands of the README.  Each sets itself up on a fresh machine:
# a virtual environment in .venv with the project and its test tools, and
# for the tests, Chromium for the console's browser test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
# Debian's headless Chromium and its driver, for the console's browser test.
BROWSER := /usr/bin/chromium /usr/bin/chromedriver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test bench clean

# The demo ends on the console; Ctrl-C stops it.
demo: $(STAMP)
	$(VENV)/bin/churnwatch demo --serve

test: $(STAMP) $(BROWSER)
	$(VENV)/bin/python -m pytest

# The benchmark suite (figures, not tests): make bench BENCH_ARGS="--quick"
bench: $(STAMP)
	$(VENV)/bin/python -m benchmarks $(BENCH_ARGS)

$(BROWSER):
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		chromium chromium-driver

# setup.py and the kernels' sources too: an edited kernel is compiled again.
$(STAMP): pyproject.toml setup.py $(wildcard stream_app/*/*.pyx stream_app/*/*/*.pyx)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

clean:
	rm -rf $(VENV) var .pytest_cache
