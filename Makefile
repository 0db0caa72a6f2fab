# ofb-deploy: every target sets itself up through `install` (a .venv with the package and its dev extra).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
OFB     = $(BIN)/ofb-deploy
STAMP   = $(VENV)/.installed
FMNIST  = /usr/share/datasets/fashion-mnist
RUN_DIR ?= runs/default

.PHONY: install run test test-fast lint clean
.PHONY: export engine
.PHONY: search bench gpu-check pretrained compare sweep latency-check
# benchmark scripts `make bench` runs in order (each writes JSON under benchmarks/results/)
BENCH_SCRIPTS = benchmarks/bench_search.py benchmarks/bench_latency.py benchmarks/bench_latency_table.py

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

# export: ONNX (fp32 + fp16 + QDQ int8) of every model in $(RUN_DIR), parity-checked against PyTorch
export: install
	$(OFB) export $(RUN_DIR) --fp16 --int8

# engine: engines for BACKEND/PRECISION (default ort-cpu fp32); `$(OFB) build --list` shows what this machine has
BACKEND   ?= ort-cpu
PRECISION ?= fp32
engine: install
	$(OFB) build --list
	$(OFB) build $(RUN_DIR) --backend $(BACKEND) --precision $(PRECISION)

# run: the whole pipeline on the embedded default config (Fashion-MNIST, vit_fmnist_tiny, 50% FLOPs);
# finished stages are skipped, a killed one resumes. Report: $(RUN_DIR)/report/report.md
run: install
	$(OFB) run --out $(RUN_DIR)

# test: the whole suite, slow end-to-end tests included, one worker per core (pytest-xdist)
test: install
	$(BIN)/python -m pytest -q -n auto --durations=25

# test-fast: the unit tests (no training, no end-to-end runs)
test-fast: install
	$(BIN)/python -m pytest -q -n auto -m "not slow"

lint: install
	$(BIN)/ruff check ofb_deploy tests benchmarks
	$(BIN)/ruff format --check ofb_deploy tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf runs .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

search: install
	$(OFB) search $(RUN_DIR) --target-flops 0.5

# pretrained: retrain the dense checkpoint the default run starts from and publish it into the package
# (ofb_deploy/pretrained/vit_fmnist_tiny.fmnist: model.json with recipe, data and per-epoch top-1, + safetensors).
# About 30 epochs of a 2-core CPU (~1.5 h); resumable after a kill.
PRETRAINED_RUN ?= runs/pretrained/vit_fmnist_tiny
pretrained: install
	$(OFB) train $(PRETRAINED_RUN) --model vit_fmnist_tiny --data fmnist --epochs 30 --lr 2e-3 --seed 0 --resume
	$(BIN)/python -m ofb_deploy.models.pretrained $(PRETRAINED_RUN)/dense vit_fmnist_tiny.fmnist

# compare: OFB vs uniform widths (keep-embed and full), Torch-Pruning and scratch at equal MACs and epochs, seeds 0 and 1
# (after `make run`); compare.json holds the paired differences
SEEDS ?= 0,1
compare: install
	$(OFB) compare $(RUN_DIR) --seeds $(SEEDS)
	$(OFB) report $(RUN_DIR)

# sweep: OFB and keep-embed uniform widths at several FLOPs targets (Pareto plot of top-1 vs ORT CPU latency)
TARGETS ?= 0.3,0.5,0.7
sweep: install
	$(OFB) sweep $(RUN_DIR) --target-flops $(TARGETS)
	$(OFB) report $(RUN_DIR)

bench: install
	@for script in $(BENCH_SCRIPTS); do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# latency-check: DeiT-S (random weights) searched for the measured latency of a hand-written 50%-MACs subnet, ORT CPU
# batch 8 at THREADS threads; passes when the searched subnet measures within 10% of it (~20 min on 2 cores)
THREADS ?= 1
latency-check: install
	$(BIN)/python benchmarks/deit_latency_search.py --threads $(THREADS)

# gpu-check: on an NVIDIA GPU, build every GPU backend x precision for $(RUN_DIR)'s dense and subnet models, check
# parity against PyTorch and time them like `validate`, then write fp16 and int8 bundles (`ofb-deploy bundle`) for this
# machine's TensorRT and run their build.sh and check.py -> benchmarks/results/gpu.json; without a GPU: one line, exit 0
gpu-check: install
	$(BIN)/python benchmarks/gpu_check.py --run-dir $(RUN_DIR)
