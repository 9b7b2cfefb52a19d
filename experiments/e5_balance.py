# Experiment 5: action-balanced window sampling. On this data walking co-occurs with turning in
# 63% of W/S transitions and "back, camera still" is 1% of transitions; weighting windows by the
# inverse frequency of their action combinations (power 0.5) shows the effects apart more often.
BALANCE_ACTIONS = 0.5
