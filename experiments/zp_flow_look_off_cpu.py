# zp (session 24: LOSES, experiments item 50): zk's preset (config/blockworld_latent_flow_60min.py + the keys'
# fields) with the learned flow zero on a look (LATENT_FLOW_LOOK_OFF, model flow_look_off): the whole-row pitch warp
# alone moves a look's latent, a row a frame, where a 3 deg look moves the picture 0.67 rows. The flow took back half
# a row, interpolated, and the snap turned that blur into new texture: look down's rollouts moved a third of the truth
# and the look down went with the seed (0.59-0.97, item 49). Result (seed 1337, 1,235 steps): 8 columns against
# zk20's 12; the head learned to draw the rows a look brings in and to take back part of the row itself (look down
# -0.33 rows a step, read 0.94), and the walks fell (W 0.27, A 0.57, following 0.76). Rolled out only (evaluate.py
# --flow-look-off 1 on weights trained with the flow) the looks read 1.00 and the uncovered rows stay flat. Apply
# after the preset.
#   DATA=runs/exp/tokens_lat VQ=runs/vqvae_demo_check/vqvae.pt EVAL=0 experiments/run.sh zp_flow_look_off_60 60 \
#       config/blockworld_latent_flow_60min.py experiments/zp_flow_look_off_cpu.py --STOP_AFTER=1235
LATENT_FLOW_KEYS = True
LATENT_FLOW_LOOK_OFF = True
