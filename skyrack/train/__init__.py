"""The GPT, its data, its trainer and its checkpoints. Knows nothing of orbits: a caller hands
it a compute budget (by deciding when to call `Trainer.step`) and faults (through hooks)."""
