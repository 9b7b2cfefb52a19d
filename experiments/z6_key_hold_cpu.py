# Experiment z6: z3r's recipe (config/blockworld_latent_flow_60min.py) with the keys' hold counts in the state and
# the movement FiLM (KEY_HOLD_BINS, model key_hold_bins): a held jump key lifts the view, then drops it, then
# bounces, so "jump is down" alone says up and down as often and its learned motion is none (jump 0.00 in every
# run). Each training window starts from its clip's counts. Apply after config/blockworld_latent_flow_60min.py.
KEY_HOLD_BINS = 16           # 1 .. 16 frames held (the last bin: 16 or more); a bounce takes ~9 frames here
