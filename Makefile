# The README's commands. Every target sets up .venv itself, so each works on a fresh clone.
PY      := .venv/bin/python
PIP     := .venv/bin/pip --disable-pip-version-check
STAMP   := .venv/.installed

.PHONY: demo test ui validate clean-data

$(PY):
	python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	# CPU torch first: a plain `torch` requirement would pull a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0

$(STAMP)-dev: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[train,dev]'
	touch $@

# One resolve for everything the demo needs (a second `pip install` re-resolves the stack).
$(STAMP)-local: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[local,train,dev]'
	touch $@ $(STAMP)-dev

demo: $(STAMP)-local
	.venv/bin/rp demo

test: $(STAMP)-dev
	@# pytest exits 5 when it collected nothing: that is a failure, never a silent pass.
	$(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

validate: $(STAMP)-dev
	.venv/bin/dagster definitions validate -w workspace.yaml

ui: $(STAMP)-dev
	DAGSTER_HOME=$${DAGSTER_HOME:-$(CURDIR)/data/dagster_home} .venv/bin/dagster dev -w workspace.yaml

clean-data:
	rm -rf data
