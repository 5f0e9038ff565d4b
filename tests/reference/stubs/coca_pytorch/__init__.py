class CoCa:  # stand-in type only, used in isinstance checks
    pass
