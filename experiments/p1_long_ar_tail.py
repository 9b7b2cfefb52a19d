# Experiment p1: j1's late autoregressive tail made long enough for a walk to add up to a whole cell (6..8
# steps from step 1,000; argmax feedback). A walk moves content less than a cell a frame, so greedy
# decoding keeps the tokens and only the hidden state can carry the displacement until it reaches a cell;
# teacher forcing never asks for that (its inputs always show the true motion), a 2..4-step tail barely.
# Apply after experiments/j1_late_ar_tail.py.
AR_WARMUP_STEPS = 1000
AR_MIN_LEN = 6
AR_MAX_LEN = 8
