"""model: the VAE, its training, run folders."""
