"""Research diagnostics, not product: they use privileged simulation state or probe a trained
model (the state oracle, input ablation). Nothing in the deployed graph imports them."""
