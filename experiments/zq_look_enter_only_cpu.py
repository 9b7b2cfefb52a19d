# zq (session 25): zp's recipe (config/blockworld_latent_flow_60min.py + the keys' fields + the flow zero on a look)
# with a look's loss on the rows the pitch warp uncovers alone (LATENT_LOOK_REST_WEIGHT = 0: on a look, and in the
# tail from its first look on, the other cells are out of the latent and CE losses). Trained with the flow off on
# looks (zp) the head learned to draw the entering rows and to take back a third of the whole-row move the truth's
# 0.67-row look asks for (look down -0.33 rows a step), and the walks fell (8 columns against zk20's 12). Here the
# truth cannot teach the take-back: does the look move a row a frame with its new rows drawn, and do the walks stay?
# Result (item 51, seed 1337, 1,235 steps): LOSES, 9 columns against zk20's 12 (zp 8). The looks move a row a frame
# (look up / down 0.94 / 1.00, +0.80 / -0.79 rows a step, truth 0.69), but the rows drawn in are plain ground or sky
# and the looks fall under copy-last (-1.6 / -0.1 dB @8); the walks fall as zp's (W 0.39, A 0.50, following 0.74).
# Apply after the preset; paired with zp and zk20 by steps.
#   DATA=runs/exp/tokens_lat VQ=runs/vqvae_demo_check/vqvae.pt EVAL=0 experiments/run.sh zq_look_enter_only_60 75 \
#       config/blockworld_latent_flow_60min.py experiments/zq_look_enter_only_cpu.py --STOP_AFTER=1235
LATENT_FLOW_KEYS = True
LATENT_FLOW_LOOK_OFF = True
LATENT_LOOK_REST_WEIGHT = 0.0
