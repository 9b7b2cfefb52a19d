# Experiment 4: cross-entropy up-weighted 4x on the cells whose token changes from frame t to t+1.
# Most cells persist, so plain CE is mostly won by copying; motion (forward/back above all, which
# changes few cells per frame) is a rounding error in it.
CHANGE_WEIGHT = 3.0
