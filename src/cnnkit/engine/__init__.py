"""Engine: the task-agnostic training loop, evaluation, checkpoints, optimisers and prediction."""
