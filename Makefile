# Two entry points for a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/tradebot: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip >/dev/null
	@$(BIN)/python -m pip install -q -e . >&2
	@touch $(BIN)/tradebot

$(VENV)/.test-extras: $(BIN)/tradebot
	@$(BIN)/python -m pip install -q -e '.[test]' >&2
	@touch $@

run: $(BIN)/tradebot
	@$(BIN)/tradebot run

test: $(VENV)/.test-extras
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(VENV)/.test-extras
	$(BIN)/ruff check .

bench: $(BIN)/tradebot
	$(BIN)/python bench/train.py
	$(BIN)/python bench/predict.py

clean:
	rm -rf $(VENV) var
