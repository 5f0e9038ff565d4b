"""Stand-in: kornia.augmentation.RandomCrop is used only with random_crop_sizes (not exercised)."""
class RandomCrop:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError('kornia stub: RandomCrop is not available')
