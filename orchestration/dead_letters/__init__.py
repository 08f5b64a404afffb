"""Dead letters: their replay as a job (the health check that flags them is in orchestration.health)."""
