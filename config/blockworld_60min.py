# train.py preset: the best blockworld world model of experiments/README.md (f0_base_60): the
# v6.2 mechanisms at demo scale, 60 minutes on a 2-core CPU (~1,950 steps, bf16 autocast).
#   python train.py config/demo_cpu.py config/blockworld_60min.py
# None of the experimental switches (CHANGE_WEIGHT, BALANCE_ACTIONS, coord/action planes,
# top-k feedback) beat it at the same budget; they stay off.
OUT_DIR = 'runs/blockworld_60min'
MAX_STEPS = 2400             # the cosine schedule's length; 60 minutes reach ~1,950 of it
TIME_LIMIT_MIN = 60.0
