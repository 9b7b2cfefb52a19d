# Experiment h2 (diagnostic): teacher forcing only, no autoregressive steps. In f0 the model gives
# the "copy this cell" token 0.41 probability on idle cells that stay 80% of the time, and the same
# on isolated movement: the AR steps (weight 2.5, inputs that are its own degraded predictions)
# may teach it that the input is unreliable, drowning what a key changes. Does the key enter without them?
AR_CURRICULUM = False
SEQ_LEN = 10                 # the same 10 predicted transitions per window as 6 TF + 4 AR
