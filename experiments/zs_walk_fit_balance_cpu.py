# zs (session 25): zn's recipe (config/blockworld_latent_flow_60min.py + the keys' fields set to the data's fit and
# frozen, a walk moved by them alone: experiments/zn_walk_fit_cpu.py) with windows drawn by the inverse frequency of
# their action combinations (BALANCE_ACTIONS = 1.0). zn met W on two seeds (0.86 / 0.90) and missed S (0.56 / 0.51)
# and the look down (0.75 / 0.72); S is down in 15% of a uniform draw's transitions (isolated, camera still, 5%),
# the looks down in 17%, jump in 19%. Balanced so, 24% / 26% / 34%, W 42% (45%). Never tried on a latent recipe (the
# token model's m0 did not win). Paired with zn (seed 1337) by steps (its 1,258).
# Result (item 51): LOSES, 9 columns against zn's 11. W 0.98, S 0.61 (the highest S of any trained run), A / D 0.93
# / 0.98, but the looks fall though they had more windows (look up / down 0.80 / 0.58, zn 1.00 / 0.75) and
# following with them (0.799).
#   DATA=runs/exp/tokens_lat VQ=runs/vqvae_demo_check/vqvae.pt EVAL=0 experiments/run.sh zs_walk_fit_balance_60 75 \
#       config/blockworld_latent_flow_60min.py experiments/zs_walk_fit_balance_cpu.py --STOP_AFTER=1258
LATENT_FLOW_KEYS = True
LATENT_FLOW_WALK_KEYS = True
LATENT_FLOW_WALK_FIT = True
BALANCE_ACTIONS = 1.0
