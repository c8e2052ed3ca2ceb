# Two entry points for a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-clock lint bench clean

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

# The suite at three moments and time zones, on a clock shifted by a signed offset (faketime's
# relative form, shared by every child process): before the open, mid-session, a Saturday.
CLOCK_MOMENTS := "2027-01-19 08:40 UTC|America/New_York" "2027-01-19 16:00 UTC|Asia/Tokyo" \
	"2027-01-23 15:00 UTC|UTC"

test-clock: $(VENV)/.test-extras
	@command -v faketime >/dev/null || { echo "test-clock needs faketime (apt-get install faketime)"; exit 1; }
	@for spec in $(CLOCK_MOMENTS); do \
		moment=$${spec%|*}; zone=$${spec#*|}; \
		offset=$$(printf '%+d' $$(( $$(date -d "$$moment" +%s) - $$(date +%s) ))); \
		echo "== suite at $$moment, TZ=$$zone (faketime -f $$offset)"; \
		TZ=$$zone faketime -f "$$offset" $(BIN)/python -m pytest -q -p no:cacheprovider || exit 1; \
	done

lint: $(VENV)/.test-extras
	$(BIN)/ruff check .

bench: $(BIN)/tradebot
	@$(BIN)/python -m pip install -q -e '.[bench]' >&2
	$(BIN)/python bench/train.py
	$(BIN)/python bench/predict.py

clean:
	rm -rf $(VENV) var
