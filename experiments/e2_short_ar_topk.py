# Experiment 2: short, mostly autoregressive windows (3 teacher-forced + 3..5 fed back) from early
# on, top-k sampled feedback instead of argmax (argmax feedback collapses to the dominant codes),
# and label-smoothed cross-entropy (FACTS §5: this helped more than long AR horizons).
SEQ_LEN = 3
AR_WARMUP_STEPS = 100
AR_MIN_LEN = 3
AR_MAX_LEN = 5
AR_FEEDBACK = 'topk'
AR_FEEDBACK_TOPK = 4
LABEL_SMOOTHING = 0.1
