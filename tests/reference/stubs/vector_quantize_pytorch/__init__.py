class VectorQuantize:  # stand-in; VQGanVAE is not used
    def __init__(self, *args, **kwargs):
        raise NotImplementedError('vector_quantize_pytorch stub')
