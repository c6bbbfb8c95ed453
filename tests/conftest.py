import torch

torch.set_num_threads(1)  # two pytest-xdist workers share two cores
