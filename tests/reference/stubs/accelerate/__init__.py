"""Stand-in for accelerate: a single-process CPU Accelerator, enough for DecoderTrainer to load a
checkpoint and train (check_upstream_loads_ours.py); the vector generator does not train."""
import contextlib
import enum

import torch


class DistributedType(enum.Enum):
    NO = 'NO'
    MULTI_GPU = 'MULTI_GPU'
    DEEPSPEED = 'DEEPSPEED'


class Accelerator:
    def __init__(self, *args, **kwargs):
        self.device = torch.device('cpu')
        self.distributed_type = DistributedType.NO
        self.mixed_precision = 'no'
        self.is_main_process = True
        self.num_processes = 1
        self.process_index = 0
        self.optimizer_step_was_skipped = False

    def prepare(self, *items):
        return items[0] if len(items) == 1 else items

    def autocast(self):
        return contextlib.nullcontext()

    def backward(self, loss):
        loss.backward()

    def clip_grad_norm_(self, parameters, max_norm):
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)

    def unwrap_model(self, model):
        return model

    def print(self, *args, **kwargs):
        print(*args, **kwargs)

    def save(self, obj, path):
        torch.save(obj, path)

    def wait_for_everyone(self):
        pass

    def gather(self, tensor):
        return tensor
