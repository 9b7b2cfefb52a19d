# Experiment p0: j1's late autoregressive tail (2..4 steps from step 1,300) fed by *commit* decoding instead
# of argmax. Commit decoding is the one under which the keys' motion shows (k0_commit: W 0.61 vs 0.04
# greedy) but its wrong new tokens (right on 22% of changing cells) cost 0.7 dB against copy-last; training
# on its own committed frames should teach the model to continue, and to mend, what commit decoding shows.
# Apply after experiments/j1_late_ar_tail.py; evaluate with --sampling commit (against j1's checkpoint
# evaluated the same way).
AR_FEEDBACK = 'commit'
