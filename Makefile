# The two commands: `make run` (install, then serve the shipped checkpoints) and `make test`
# (install, then the whole suite). `make install` is idempotent: each step re-runs only when
# the files it depends on change.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# The browser tests drive Debian's Chromium (Playwright's own browser download cannot work here).
CHROMIUM := /usr/bin/chromium
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install run test bench clean

VENDOR := static/vendor/htmx.min.js static/vendor/swagger-ui-bundle.js static/vendor/swagger-ui.css

install: $(VENV)/.installed $(VENDOR)

# torch first, at the version constraints.txt pins. The build comes from where pip finds it:
# where pip's configuration points at a local folder of wheels holding the CPU build, that one;
# elsewhere, install the CPU build first (README, "Where torch comes from"), or PyPI's 2.13.0 is
# a multi-GB CUDA build. The project, its diffusers extra (the shipped AutoencoderKL) and its
# test extras follow under the same constraints.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[diffusers,test]'
	touch $@

# htmx from the npm registry (pinned in package.json/package-lock.json), served from /static.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

static/vendor/htmx.min.js: node_modules/.package-lock.json
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js $@

# Swagger UI for /docs (FastAPI's default page would load it from a CDN)
static/vendor/swagger-ui-bundle.js static/vendor/swagger-ui.css: node_modules/.package-lock.json
	mkdir -p static/vendor
	cp node_modules/swagger-ui-dist/$(notdir $@) $@

run: install $(FASHION_MNIST)
	LATENT_EXPLORER_CACHE_DIR=$${LATENT_EXPLORER_CACHE_DIR:-.cache} $(VENV)/bin/latent-explorer serve --host $(HOST) --port $(PORT)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

# Fashion-MNIST, the real data (Debian's package: the four idx files, gzipped)
$(FASHION_MNIST):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq dataset-fashion-mnist

# pytest in TEST_WORKERS processes (pytest-xdist): one per core (docs/testing.md)
TEST_WORKERS ?= 2

test: install $(CHROMIUM) $(FASHION_MNIST)
	$(PY) -m ruff check app latent_explorer tests bench docs examples
	$(PY) -m mypy app latent_explorer
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n $(TEST_WORKERS)

/usr/bin/wrk:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wrk

bench: install $(CHROMIUM) /usr/bin/wrk
	$(PY) bench/render_throughput.py
	$(PY) bench/train_throughput.py
	$(PY) bench/api_latency.py
	$(PY) bench/api_latency.py --workers 2
	$(PY) bench/browser_paint.py
	$(PY) bench/browser_direction.py
	$(PY) bench/load.py
	$(PY) bench/metrics_speed.py
	$(PY) bench/compress_speed.py checkpoints/dsprites-beta-vae
	$(PY) bench/map_speed.py
	$(PY) bench/browser_map.py
	$(PY) bench/map_cold_encoding.py
	$(PY) bench/encode_folder.py --many
	PYTHONPATH=. $(PY) bench/set_map.py
	PYTHONPATH=. $(PY) bench/fashion_folder_directions.py
	PYTHONPATH=. $(PY) bench/layout_speed.py

clean:
	rm -rf $(VENV) node_modules static/vendor
