import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))  # `from toc import ...`
torch.set_num_threads(1)  # two pytest-xdist workers share two cores
