"""vqsim.experiments: command line, sweeps, result storage, plots, the demo."""
