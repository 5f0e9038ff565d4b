"""Stand-in: DecoderTrainer imports these names; the vector generator does not train."""
import enum


class DistributedType(enum.Enum):
    NO = 'NO'
    MULTI_GPU = 'MULTI_GPU'
    DEEPSPEED = 'DEEPSPEED'


class Accelerator:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError('accelerate stub')
