"""License services: status, the release policy, inventory, evaluation and collection."""
