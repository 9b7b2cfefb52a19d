# Experiment n1: n0 with the 'demo' preset at its own size (3 GRU layers of 128, 3.6M parameters)
# instead of demo_cpu's 2 layers of 64 (0.7M): does capacity, affordable on a GPU, make the keys work?
# Apply after experiments/k0_solo_two_threads.py and experiments/n0_gpu_batch32.py.
MODEL_OVERRIDES = {'copy_gate': True, 'channels_last': True}
