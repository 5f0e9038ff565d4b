class LinearWarmup:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError('pytorch_warmup stub')
