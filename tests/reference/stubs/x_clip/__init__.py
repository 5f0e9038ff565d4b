class CLIP:  # stand-in type only, used in isinstance checks
    pass
