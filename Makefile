# Two commands a new user needs: `make site` and `make test`. Both create .venv if missing.
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: site test install lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	# torch first, pinned to the CPU build, or a dependency pulls a CUDA build of several GB
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[test,saelens]'
	touch $(STAMP)

install: $(STAMP)

site: $(STAMP)
	$(VENV)/bin/saesite build

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

lint: $(STAMP)
	$(VENV)/bin/ruff check generator tests benchmarks
	$(VENV)/bin/ruff format --check generator tests benchmarks

clean:
	rm -rf site test-artifacts
