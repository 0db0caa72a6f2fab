# ofb-deploy: every target sets itself up through `install` (a .venv with the package and its dev extra).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
OFB     = $(BIN)/ofb-deploy
STAMP   = $(VENV)/.installed
FMNIST  = /usr/share/datasets/fashion-mnist
RUN_DIR ?= runs/default

.PHONY: install run test test-fast lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	@if [ -f $(FMNIST)/train-images-idx3-ubyte.gz ]; then \
		echo "Fashion-MNIST found in $(FMNIST)"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get install -y dataset-fashion-mnist || (apt-get update && apt-get install -y dataset-fashion-mnist); \
	else \
		echo "Fashion-MNIST is not installed: run 'sudo apt-get install dataset-fashion-mnist'," \
		     "or pass --data-root DIR / let torchvision download it when online"; \
	fi
	@touch $(STAMP)

run: install
	$(OFB) train --model vit_fmnist_tiny --data fmnist --epochs 3 --out $(RUN_DIR)/dense

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check ofb_deploy tests
	$(BIN)/ruff format --check ofb_deploy tests

clean:
	rm -rf runs .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
