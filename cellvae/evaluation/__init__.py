"""evaluation: reconstruction metrics, baselines, the latent space, the analysis stage's figures."""
