# Experiment p0: j1's late autoregressive tail (2..4 steps from step 1,300) fed by *commit* decoding instead
# of argmax. Commit decoding is the one under which the keys' motion shows (k0_commit: W 0.61 vs 0.04
# greedy) but its wrong new tokens (right on 22% of changing cells) cost 0.7 dB against copy-last; training
# on its own committed frames should teach the model to continue, and to mend, what commit decoding shows.
# Evaluate with --sampling commit. Apply after experiments/k0_solo_two_threads.py (+ --CPU_THREADS=1 when
# two runs share the machine).
AR_CURRICULUM = True
AR_WARMUP_STEPS = 1300
AR_MIN_LEN = 2
AR_MAX_LEN = 4
AR_FEEDBACK = 'commit'
