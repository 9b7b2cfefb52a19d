# Experiment h1: half the training windows are drawn in proportion to their isolated-movement
# transitions (a key down, camera still). On the blockworld data that moves isolated movement from
# 26% to 54% of the sampled transitions: the keys are the only thing that explains those frames.
ISOLATED_MOVES = 0.5
