"""Empty stand-in; nothing on the decoder path uses torchvision transforms."""
